-- What the REST API needs beyond the chat functions: one session with its unread count,
-- the host platform's booking summaries (optional table), and the audited admin close.
--
-- Errors carry the same SQLSTATEs as the chat functions:
--   28000 -> 401, 42501 -> 403, P0002 -> 404, 22023 -> 422

-- ---------------------------------------------------------------- private helpers
-- Admins may close any session. Security definer, because RLS lets only participants
-- update a session; every call leaves a row in the audit log, in the same transaction.
create or replace function chat_private.close_session_as_admin(target_session_id uuid)
returns public.chat_sessions
language plpgsql
security definer
set search_path = ''
as $$
declare
  _uid uuid := auth.uid();
  _row public.chat_sessions;
  _previous text;
begin
  if _uid is null then
    raise exception 'not authenticated' using errcode = '28000';
  end if;
  if not chat_private.is_admin() then
    raise exception 'only admins can close sessions they do not take part in'
      using errcode = '42501';
  end if;
  select s.* into _row from public.chat_sessions as s
  where s.id = target_session_id
  for update;
  if not found then
    raise exception 'chat session % not found', target_session_id using errcode = 'P0002';
  end if;
  _previous := _row.status;
  if _row.status = 'active' then
    update public.chat_sessions as s set status = 'closed'
    where s.id = target_session_id;
    -- Read it again: the closing system message has moved last_message_at since.
    select s.* into _row from public.chat_sessions as s
    where s.id = target_session_id;
  end if;
  insert into public.chat_audit_logs (actor_id, actor_role, action, session_id, details)
  values (
    _uid,
    chat_private.app_role(),
    'admin_close_session',
    target_session_id,
    jsonb_build_object(
      'previous_status', _previous,
      'participant', _row.participants @> array[_uid]
    )
  );
  return _row;
end
$$;

comment on function chat_private.close_session_as_admin(uuid) is
'Close any session as an admin (app_metadata.role admin or super_admin), audited.';

revoke all on function chat_private.close_session_as_admin(uuid) from public;
grant execute on function chat_private.close_session_as_admin(uuid) to authenticated;

-- ---------------------------------------------------------------- get_chat_session
-- One session of the caller in the shape of list_my_chat_sessions.
create or replace function public.get_chat_session(session_id uuid)
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
  from public.chat_sessions as s
  cross join lateral chat_private.session_activity(s.id) as a
  where s.id = get_chat_session.session_id
    and s.participants @> array[(select auth.uid())]
$$;

comment on function public.get_chat_session(uuid) is
'One session the caller takes part in, with unread_count and the last message; empty otherwise.';

-- ---------------------------------------------------------------- chat_booking_summaries
-- The host platform's public.bookings is optional: these migrations apply without it.
-- The table is looked up at run time, and read as the caller (its own RLS decides);
-- no table, no id uuid or service_name column, or no privilege: an empty object, never an error.
create or replace function public.chat_booking_summaries(booking_ids uuid[])
returns jsonb
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  _bookings regclass := to_regclass('public.bookings');
  _summaries jsonb;
begin
  if _bookings is null or booking_ids is null or cardinality(booking_ids) = 0 then
    return '{}'::jsonb;
  end if;
  if not exists (
    select 1 from pg_catalog.pg_attribute as a
    where a.attrelid = _bookings and a.attname = 'id'
      and a.atttypid = 'uuid'::regtype and not a.attisdropped
  ) or not exists (
    select 1 from pg_catalog.pg_attribute as a
    where a.attrelid = _bookings and a.attname = 'service_name'
      and a.attnum > 0 and not a.attisdropped
  ) then
    return '{}'::jsonb;
  end if;
  -- Only now are both columns known to exist (has_column_privilege raises otherwise).
  if not has_column_privilege(_bookings, 'id', 'select')
    or not has_column_privilege(_bookings, 'service_name', 'select') then
    return '{}'::jsonb;
  end if;
  execute format(
    'select jsonb_object_agg(b.id, b.service_name) from %s as b where b.id = any($1)',
    _bookings
  ) into _summaries using booking_ids;
  return coalesce(_summaries, '{}'::jsonb);
end
$$;

comment on function public.chat_booking_summaries(uuid[]) is
'{booking_id: service_name} for the given bookings from the host platform''s public.bookings, when that table exists and the caller may read it.';

-- ---------------------------------------------------------------- admin_close_chat_session
create or replace function public.admin_close_chat_session(session_id uuid)
returns public.chat_sessions
language sql
security invoker
set search_path = ''
as $$
  select * from chat_private.close_session_as_admin(admin_close_chat_session.session_id)
$$;

comment on function public.admin_close_chat_session(uuid) is
'Close any session as an admin; a system message records it and the audit log keeps who did it.';

-- ---------------------------------------------------------------- grants
revoke all on function public.get_chat_session(uuid) from public, anon;
revoke all on function public.chat_booking_summaries(uuid[]) from public, anon;
revoke all on function public.admin_close_chat_session(uuid) from public, anon;

grant execute on function public.get_chat_session(uuid) to authenticated, service_role;
grant execute on function public.chat_booking_summaries(uuid[]) to authenticated, service_role;
grant execute on function public.admin_close_chat_session(uuid) to authenticated;
