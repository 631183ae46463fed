-- Full-text search over the messages a user may read, and filters on the session list.
-- The 'simple' configuration (no stemming, no stop words): conversations mix languages,
-- and a word the user typed should match that word. An expression index, not a stored
-- column: chat_messages is not rewritten, and the queries below repeat the expression.

-- ---------------------------------------------------------------- index
create index chat_messages_content_fts on public.chat_messages
using gin (to_tsvector('simple'::regconfig, coalesce(content, '')));

-- ---------------------------------------------------------------- search_chat_messages
-- Best match first (ts_rank_cd), then newest; before_id continues after a result of the
-- same query (a keyset on rank, created_at, seq). snippet: the text around the best match
-- with each hit between U+0002 and U+0003 (characters removed from the text first), so a
-- client highlights them without trusting any markup from the content.
create or replace function public.search_chat_messages(
  query text,
  in_session_id uuid default null,
  max_rows integer default 20,
  before_id uuid default null
) returns table (
  id uuid,
  seq bigint,
  session_id uuid,
  sender_id uuid,
  type text,
  content text,
  reply_to_message_id uuid,
  metadata jsonb,
  client_message_id text,
  created_at timestamptz,
  rank real,
  snippet text
)
language plpgsql
stable
security invoker
set search_path = ''
as $$
#variable_conflict use_variable
declare
  _uid uuid := auth.uid();
  _q tsquery;
  _rank real := 'infinity'::real;
  _at timestamptz := 'infinity'::timestamptz;
  _seq bigint := 9223372036854775807;
begin
  if _uid is null then
    raise exception 'not authenticated' using errcode = '28000';
  end if;
  if query is null or length(btrim(query)) = 0 or length(query) > 200 then
    raise exception 'query must be 1 to 200 characters' using errcode = '22023';
  end if;
  _q := websearch_to_tsquery('simple'::regconfig, query);
  if numnode(_q) = 0 then
    return;
  end if;
  if before_id is not null then
    select
      ts_rank_cd(to_tsvector('simple'::regconfig, coalesce(m.content, '')), _q),
      m.created_at,
      m.seq
    into _rank, _at, _seq
    from public.chat_messages as m
    where m.id = before_id;
    if not found then
      raise exception 'before_id is not a message you can read' using errcode = '22023';
    end if;
  end if;
  return query
  select
    m.id,
    m.seq,
    m.session_id,
    m.sender_id,
    m.type,
    m.content,
    m.reply_to_message_id,
    m.metadata,
    m.client_message_id,
    m.created_at,
    hit.rank,
    -- The parser would take <...> for markup and drop it: hide < and > from it (as two
    -- private-use characters) so the snippet shows the text as written.
    translate(
      ts_headline(
        'simple'::regconfig,
        translate(coalesce(m.content, ''), e'<>\x02\x03', e'\uE000\uE001'),
        _q,
        e'StartSel=\x02, StopSel=\x03, MaxWords=30, MinWords=12, ShortWord=0'
      ),
      e'\uE000\uE001',
      '<>'
    )
  from public.chat_messages as m
  cross join lateral (
    select ts_rank_cd(to_tsvector('simple'::regconfig, coalesce(m.content, '')), _q) as rank
  ) as hit
  where to_tsvector('simple'::regconfig, coalesce(m.content, '')) @@ _q
    and (in_session_id is null or m.session_id = in_session_id)
    and m.session_id in (select chat_private.my_session_ids())
    and (hit.rank, m.created_at, m.seq) < (_rank, _at, _seq)
  order by hit.rank desc, m.created_at desc, m.seq desc
  limit least(greatest(coalesce(max_rows, 20), 1), 100);
end
$$;

comment on function public.search_chat_messages(text, uuid, integer, uuid) is
'Messages of the caller''s sessions matching a web-search query, best first, with highlighted snippets.';

-- ---------------------------------------------------------------- find_my_chat_sessions
-- The session list with filters: search (the title, or any message, by full text), type,
-- status. Same rows and order as list_my_chat_sessions.
create or replace function public.find_my_chat_sessions(
  search text default null,
  session_type text default null,
  session_status text default null,
  max_rows integer default 50,
  skip_rows integer default 0
) returns table (
  id uuid,
  participants uuid[],
  type text,
  booking_id uuid,
  status text,
  title text,
  created_by uuid,
  created_at timestamptz,
  updated_at timestamptz,
  last_message_at timestamptz,
  closed_at timestamptz,
  unread_count bigint,
  last_message jsonb,
  total_count bigint
)
language sql
stable
security invoker
set search_path = ''
as $$
  with wanted as (
    select s.*
    from public.chat_sessions as s
    where s.participants @> array[(select auth.uid())]
      and (session_type is null or s.type = session_type)
      and (session_status is null or s.status = session_status)
      and (
        coalesce(btrim(search), '') = ''
        or s.title ilike '%' || replace(replace(replace(search, '\', '\\'), '%', '\%'), '_', '\_') || '%'
        or exists (
          select 1 from public.chat_messages as m
          where m.session_id = s.id
            and to_tsvector('simple'::regconfig, coalesce(m.content, ''))
            @@ websearch_to_tsquery('simple'::regconfig, search)
        )
      )
  )
  select
    w.id,
    w.participants,
    w.type,
    w.booking_id,
    w.status,
    w.title,
    w.created_by,
    w.created_at,
    w.updated_at,
    w.last_message_at,
    w.closed_at,
    a.unread_count,
    a.last_message,
    count(*) over () as total_count
  from wanted as w
  cross join lateral chat_private.session_activity(w.id) as a
  order by coalesce(w.last_message_at, w.created_at) desc, w.id
  limit least(greatest(coalesce(max_rows, 50), 1), 200)
  offset greatest(coalesce(skip_rows, 0), 0)
$$;

comment on function public.find_my_chat_sessions(text, text, text, integer, integer) is
'The caller''s sessions filtered by text (title or messages), type and status, newest activity first.';

revoke all on function public.search_chat_messages(text, uuid, integer, uuid) from public, anon;
revoke all on function public.find_my_chat_sessions(text, text, text, integer, integer)
from public, anon;
grant execute on function public.search_chat_messages(text, uuid, integer, uuid)
to authenticated, service_role;
grant execute on function public.find_my_chat_sessions(text, text, text, integer, integer)
to authenticated, service_role;
