-- The contact filter runs each of its three searches only when the text holds what a match
-- of it needs: an @ or a spelled-out "at" for e-mail addresses, "://", "www." or a dot
-- before a letter for links, a digit for phone numbers. Each search is a query of its own
-- (one executor per message and pattern); most messages need one or none. The same text
-- gives the same matches: each condition is implied by its pattern.

create or replace function chat_private.contact_matches(content text, allow text[])
returns text[]
language plpgsql
immutable
set search_path = ''
as $_$
declare
  _found text [] := '{}'::text [];
  _m text [];
  _candidate text;
  _digits text;
  _host text;
begin
  if content is null or content !~* '[0-9@.]|\m(at|dot)\M' then
    return _found;
  end if;
  -- E-mail addresses, also spelled out. A match needs @, (at), [at] or a spaced at.
  if content ~* '@|\(at\)|\[at\]|\sat\s' then
    for _m in
      select regexp_matches(
        content,
        '[a-z0-9._%+-]+\s*(?:@|\(at\)|\[at\]|\s+at\s+)\s*[a-z0-9-]+(?:\s*(?:\.|\(dot\)|\[dot\]|\s+dot\s+)\s*[a-z0-9-]+)*\s*(?:\.|\(dot\)|\[dot\]|\s+dot\s+)\s*[a-z]{2,}\M',
        'gi'
      )
    loop
      _candidate := _m[1];
      if _candidate ~* '@|\(at\)|\[at\]' or _candidate ~* '\s+at\s+\S+\s+dot\s+' then
        _found := _found || _candidate;
      end if;
    end loop;
  end if;
  -- Links. A match needs ://, www. or a dot before a letter.
  if content ~* '://|www\.|\.[a-z]' then
    for _m in
      select regexp_matches(
        content,
        '((?:https?://|www\.)[^\s<>"]+|\m(?:t\.me|wa\.me|telegram\.me)/[^\s<>"]+|\m[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:com|net|org|io|info|biz|app|link|ly|gg|ru|uk|fr|nl|ca|au|br|eu|tv|xyz|site|online|shop)\M(?:/[^\s<>"]*)?)',
        'gi'
      )
    loop
      _candidate := _m[1];
      continue when _candidate ~ '@'
        or exists (select 1 from unnest(_found) as f (hit) where strpos(f.hit, _candidate) > 0);
      _host := lower(regexp_replace(_candidate, '^(?:https?://)?(?:www\.)?([^/:?#]+).*$', '\1', 'i'));
      continue when exists (
        select 1 from unnest(allow) as a (domain)
        where _host = lower(a.domain) or _host like '%.' || lower(a.domain)
      );
      _found := _found || _candidate;
    end loop;
  end if;
  -- Phone numbers. A match needs a digit.
  if content ~ '\d' then
    for _m in select regexp_matches(content, '(\+?\(?\d[\d\s().-]{5,}\d\)?)', 'g') loop
      _candidate := btrim(_m[1]);
      _digits := regexp_replace(_candidate, '\D', '', 'g');
      continue when length(_digits) not between 7 and 15;
      continue when _candidate ~ '^\d{4}[-./]\d{1,2}[-./]\d{1,2}$' or _candidate ~ '^\d{1,2}[-./]\d{1,2}[-./]\d{4}$';
      continue when _candidate ~ '^\d{1,3}(?:[ .]\d{3})+$' and _candidate !~ '^\+';
      continue when _candidate ~ '^(?:19|20)\d{2}\s*-\s*(?:19|20)\d{2}$';
      _found := _found || _candidate;
    end loop;
  end if;
  return _found;
end
$_$;
