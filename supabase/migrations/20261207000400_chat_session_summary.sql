-- The session row as the session functions return it, defined once.
--
-- get_chat_session, list_my_chat_sessions and find_my_chat_sessions each restated the
-- session's columns plus unread_count and last_message, in their RETURNS clause and again
-- in their select list. Now the shape is the composite type public.chat_session_summary and
-- the one function that fills it is chat_private.session_summary: a column added to the
-- summary is added here and nowhere else.
--
-- Callers see the same columns, in the same order, with the same types: get_chat_session
-- and list_my_chat_sessions return setof chat_session_summary; find_my_chat_sessions
-- returns the summary's columns and total_count. PostgreSQL cannot extend a row type by a
-- column, so find_my_chat_sessions' RETURNS clause names the columns once more; a pgTAP
-- test fails when it no longer matches the type.
--
-- chat_private.session_activity, which computed the unread count and the last message for
-- a session id, is folded into session_summary and dropped.
--
-- Changing a function's result type needs drop and create, so grants and comments are
-- given again, as they were.

create type public.chat_session_summary as (
  id uuid,
  participants uuid [],
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
  last_message jsonb
);

comment on type public.chat_session_summary is
'A chat session as the session functions return it: the row, the caller''s unread_count and the last message (first 200 characters).';

-- The summary of one session row for the caller: the row's columns, the messages from
-- others past the caller's read cursor, and the newest message. It replaces
-- session_activity (the same queries) so that each session costs one function call.
-- Security definer, as session_activity was: under the caller's RLS every call
-- re-evaluated the messages policy. So it checks participation itself, against the
-- stored row (never the row it was given, which a caller could forge): an outsider gets
-- 0 and null.
create function chat_private.session_summary(target public.chat_sessions)
returns public.chat_session_summary
language sql
stable
security definer
set search_path = ''
as $$
  with me as (
    select
      (select auth.uid()) as uid,
      exists (
        select 1 from public.chat_sessions as s
        where s.id = target.id and s.participants @> array[(select auth.uid())]
      ) as participates
  )

  select row(
    target.id,
    target.participants,
    target.type,
    target.booking_id,
    target.status,
    target.title,
    target.created_by,
    target.created_at,
    target.updated_at,
    target.last_message_at,
    target.closed_at,
    (
      select count(*)
      from public.chat_messages as m
      left join public.chat_read_state as r
        on r.session_id = m.session_id and r.user_id = me.uid
      where me.participates
        and m.session_id = target.id
        and (m.created_at, m.seq)
        > (coalesce(r.last_read_at, '-infinity'::timestamptz), coalesce(r.last_read_seq, 0))
        and m.sender_id is distinct from me.uid
    ),
    (
      select jsonb_build_object(
        'id', m.id,
        'sender_id', m.sender_id,
        'type', m.type,
        'content', left(m.content, 200),
        'created_at', m.created_at
      )
      from public.chat_messages as m
      where me.participates and m.session_id = target.id
      order by m.created_at desc, m.seq desc
      limit 1
    )
  )::public.chat_session_summary
  from me
$$;

revoke all on function chat_private.session_summary(public.chat_sessions) from public;
grant execute on function chat_private.session_summary(public.chat_sessions)
to authenticated, service_role;

-- ---------------------------------------------------------------- get_chat_session
drop function public.get_chat_session(uuid);

create function public.get_chat_session(session_id uuid)
returns setof public.chat_session_summary
language sql
stable
set search_path = ''
as $$
  select summary.*
  from public.chat_sessions as s
  cross join lateral chat_private.session_summary(s) as summary
  where s.id = get_chat_session.session_id
    and s.participants @> array[(select auth.uid())]
$$;

comment on function public.get_chat_session(uuid) is
'One session the caller takes part in, with unread_count and the last message; empty otherwise.';
revoke all on function public.get_chat_session(uuid) from public, anon;
grant execute on function public.get_chat_session(uuid) to authenticated, service_role;

-- ---------------------------------------------------------------- list_my_chat_sessions
-- Pages first, then summarises the page only.
drop function public.list_my_chat_sessions(integer, integer);

create function public.list_my_chat_sessions(max_rows integer default 50, skip_rows integer default 0)
returns setof public.chat_session_summary
language sql
stable
set search_path = ''
as $$
  select summary.*
  from (
    select p.*
    from public.chat_sessions as p
    where p.participants @> array[(select auth.uid())]
    order by coalesce(p.last_message_at, p.created_at) desc, p.id
    limit least(greatest(coalesce(max_rows, 50), 1), 200)
    offset greatest(coalesce(skip_rows, 0), 0)
  ) as s
  cross join lateral chat_private.session_summary(s::public.chat_sessions) as summary
  order by coalesce(s.last_message_at, s.created_at) desc, s.id
$$;

comment on function public.list_my_chat_sessions(integer, integer) is
'The caller''s sessions, newest activity first, with unread_count and the last message (computed for the page only).';
revoke all on function public.list_my_chat_sessions(integer, integer) from public, anon;
grant execute on function public.list_my_chat_sessions(integer, integer)
to authenticated, service_role;

-- ---------------------------------------------------------------- find_my_chat_sessions
drop function public.find_my_chat_sessions(text, text, text, integer, integer);

create function public.find_my_chat_sessions(
  search text default null,
  session_type text default null,
  session_status text default null,
  max_rows integer default 50,
  skip_rows integer default 0
)
returns table (
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

  select summary.*, count(*) over () as total_count
  from wanted as w
  cross join lateral chat_private.session_summary(w::public.chat_sessions) as summary
  order by coalesce(w.last_message_at, w.created_at) desc, w.id
  limit least(greatest(coalesce(max_rows, 50), 1), 200)
  offset greatest(coalesce(skip_rows, 0), 0)
$$;

comment on function public.find_my_chat_sessions(text, text, text, integer, integer) is
'The caller''s sessions filtered by text (title or messages), type and status, newest activity first.';
revoke all on function public.find_my_chat_sessions(text, text, text, integer, integer)
from public, anon;
grant execute on function public.find_my_chat_sessions(text, text, text, integer, integer)
to authenticated, service_role;

-- Nothing calls it any more: session_summary holds its queries.
drop function chat_private.session_activity(uuid);
