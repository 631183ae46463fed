-- The contact-information filter: phone numbers, e-mail addresses and links in a message
-- (shared to take a client off the platform) are, by CONTACT_FILTER, let through (off),
-- stored and reported automatically (flag, the default), stored with the matches replaced
-- (mask), or refused (block, SQLSTATE CHCIB). It runs in the database on every path (the
-- relay, PostgREST, SQL as a user) and on edits; links to the platform's own domains
-- (CONTACT_FILTER_ALLOW_DOMAINS) pass.
--
-- What counts (chat_private.contact_matches, documented in docs/moderation.md):
-- * an e-mail address, also written with (at)/[at]/" at " and (dot)/[dot]/" dot ";
-- * a link: http(s)://..., www...., a messenger link (t.me/, wa.me/), or a bare domain
--   ending in a common top-level domain (not those that are English words: .it, .in, .me);
-- * a phone number: a run of digits and separators (spaces, dots, dashes, parentheses,
--   an optional leading +) holding 7 to 15 digits, unless it reads as a date
--   (2024-05-12, 12.05.2024), a span of years (2010-2015) or a number grouped by thousands
--   (1 250 000; so is 612 345 678).

alter table chat_private.moderation_settings
add column contact_filter text not null default 'flag',
add column allow_domains text[] not null default '{}',
add constraint moderation_settings_contact_filter_check check (
  contact_filter in ('off', 'flag', 'mask', 'block')
);

comment on column chat_private.moderation_settings.contact_filter is
'CONTACT_FILTER: off, flag (store and report), mask (store with matches replaced) or block (refuse).';

alter table chat_private.reports alter column reporter_id drop not null;
alter table chat_private.reports add column automatic boolean not null default false;
comment on column chat_private.reports.automatic is
'Filed by the contact filter (reporter_id null), not by a participant.';

-- ---------------------------------------------------------------- matching
create or replace function chat_private.contact_matches(content text, allow text[]) returns text[]
language plpgsql
immutable
set search_path = ''
as $$
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
  -- E-mail addresses, also spelled out.
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
  -- Links.
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
  -- Phone numbers.
  for _m in select regexp_matches(content, '(\+?\(?\d[\d\s().-]{5,}\d\)?)', 'g') loop
    _candidate := btrim(_m[1]);
    _digits := regexp_replace(_candidate, '\D', '', 'g');
    continue when length(_digits) not between 7 and 15;
    continue when _candidate ~ '^\d{4}[-./]\d{1,2}[-./]\d{1,2}$' or _candidate ~ '^\d{1,2}[-./]\d{1,2}[-./]\d{4}$';
    continue when _candidate ~ '^\d{1,3}(?:[ .]\d{3})+$' and _candidate !~ '^\+';
    continue when _candidate ~ '^(?:19|20)\d{2}\s*-\s*(?:19|20)\d{2}$';
    _found := _found || _candidate;
  end loop;
  return _found;
end
$$;

create or replace function chat_private.mask_contacts(content text, matches text[]) returns text
language plpgsql
immutable
set search_path = ''
as $$
declare
  _result text := content;
  _m text;
begin
  foreach _m in array matches loop
    _result := replace(_result, _m, '[hidden]');
  end loop;
  return _result;
end
$$;

-- ---------------------------------------------------------------- enforcement
-- Before a user's message (or edit) is stored: the mode decides.
create or replace function chat_private.filter_contacts() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  _mode text;
  _allow text [];
  _matches text [];
begin
  if new.content is null or not chat_private.is_api_caller() then
    return new;
  end if;
  if tg_op = 'UPDATE' and new.content is not distinct from old.content then
    return new;
  end if;
  select s.contact_filter, s.allow_domains into _mode, _allow
  from chat_private.moderation_settings as s where s.id;
  if _mode is null or _mode = 'off' then
    return new;
  end if;
  _matches := chat_private.contact_matches(new.content, _allow);
  if cardinality(_matches) = 0 then
    return new;
  end if;
  if _mode = 'block' then
    raise exception 'messages may not share phone numbers, e-mail addresses or links'
      using errcode = 'CHCIB';
  elsif _mode = 'mask' then
    new.content := chat_private.mask_contacts(new.content, _matches);
  else
    new.metadata := coalesce(new.metadata, '{}'::jsonb) || jsonb_build_object('contact_flagged', true);
  end if;
  return new;
end
$$;

create trigger chat_messages_filter_contacts
before insert or update of content on public.chat_messages
for each row execute function chat_private.filter_contacts();

-- flag: the stored message gets an automatic report (after the insert: it needs the row).
create or replace function chat_private.report_flagged() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into chat_private.reports (session_id, message_id, reporter_id, category, note, automatic)
  values (new.session_id, new.id, null, 'off_platform_contact', 'contact filter', true)
  on conflict do nothing;
  return null;
end
$$;

create trigger chat_messages_report_flagged
after insert on public.chat_messages
for each row when ((new.metadata ->> 'contact_flagged') = 'true')
execute function chat_private.report_flagged();

create trigger chat_messages_report_flagged_edit
after update on public.chat_messages
for each row when (
  (new.metadata ->> 'contact_flagged') = 'true'
  and (old.metadata ->> 'contact_flagged') is distinct from 'true'
)
execute function chat_private.report_flagged();

create or replace function chat_private.set_contact_filter(mode text, allow text[]) returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  if mode not in ('off', 'flag', 'mask', 'block') then
    raise exception 'the contact filter must be off, flag, mask or block' using errcode = '22023';
  end if;
  update chat_private.moderation_settings as s
  set contact_filter = mode, allow_domains = coalesce(allow, '{}'), updated_at = now()
  where s.id and (s.contact_filter, s.allow_domains) is distinct from (mode, coalesce(allow, '{}'));
end
$$;

revoke all on function chat_private.contact_matches(text, text[]),
chat_private.mask_contacts(text, text[]), chat_private.filter_contacts(),
chat_private.report_flagged(), chat_private.set_contact_filter(text, text[])
from public, anon, authenticated, service_role;
grant execute on function chat_private.set_contact_filter(text, text[]) to service_role;
