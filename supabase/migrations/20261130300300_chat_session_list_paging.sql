-- The session list pages first, then computes unread counts and last messages for that
-- page only: its cost no longer grows with every session the caller has ever had (3,000
-- sessions computed all 3,000 activities for limit=1). Same signature, same rows, same
-- order (newest activity first, ties by id).

-- One session's activity for the caller: messages from others past their read cursor, and
-- the newest message. Security definer with its own participation check: under the
-- caller's RLS every call re-evaluated the messages policy (all the caller's sessions), so
-- each session of a list cost as much as the whole list.
create or replace function chat_private.session_activity(target_session_id uuid)
returns table (unread_count bigint, last_message jsonb)
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
        where s.id = target_session_id and s.participants @> array[(select auth.uid())]
      ) as participates
  )

  select
    (
      select count(*)
      from public.chat_messages as m
      left join public.chat_read_state as r
        on r.session_id = m.session_id and r.user_id = me.uid
      where me.participates
        and m.session_id = target_session_id
        and (m.created_at, m.seq)
        > (coalesce(r.last_read_at, '-infinity'::timestamptz), coalesce(r.last_read_seq, 0))
        and m.sender_id is distinct from me.uid
    ) as unread_count,
    (
      select jsonb_build_object(
        'id', m.id,
        'sender_id', m.sender_id,
        'type', m.type,
        'content', left(m.content, 200),
        'created_at', m.created_at
      )
      from public.chat_messages as m
      where me.participates and m.session_id = target_session_id
      order by m.created_at desc, m.seq desc
      limit 1
    ) as last_message
  from me
$$;

create or replace function public.list_my_chat_sessions(
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
  last_message jsonb
)
language sql
stable
security invoker
set search_path = ''
as $$
  select
    s.id,
    s.participants,
    s.type,
    s.booking_id,
    s.status,
    s.title,
    s.created_by,
    s.created_at,
    s.updated_at,
    s.last_message_at,
    s.closed_at,
    a.unread_count,
    a.last_message
  from (
    select p.*
    from public.chat_sessions as p
    where p.participants @> array[(select auth.uid())]
    order by coalesce(p.last_message_at, p.created_at) desc, p.id
    limit least(greatest(coalesce(max_rows, 50), 1), 200)
    offset greatest(coalesce(skip_rows, 0), 0)
  ) as s
  cross join lateral chat_private.session_activity(s.id) as a
  order by coalesce(s.last_message_at, s.created_at) desc, s.id
$$;

comment on function public.list_my_chat_sessions(integer, integer) is
'The caller''s sessions, newest activity first, with unread_count and the last message (computed for the page only).';
