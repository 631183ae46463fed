-- Business rules as SQL functions (security invoker): PostgREST (/rest/v1/rpc/...) and the
-- Python service run the same code under the same RLS.
--
-- Errors carry a SQLSTATE the service maps to HTTP:
--   28000 not authenticated -> 401      42501 forbidden -> 403
--   P0002 not found or not visible -> 404
--   55000 wrong state (closed session) -> 409
--   22023 invalid value -> 422

-- ---------------------------------------------------------------- private helpers
-- Which of these ids are not users. Security definer: the API roles cannot read auth.users.
create or replace function chat_private.unknown_users(user_ids uuid[]) returns uuid[]
language sql
stable
security definer
set search_path = ''
as $$
  select coalesce(array_agg(wanted.id), '{}')
  from unnest(user_ids) as wanted (id)
  where not exists (select 1 from auth.users as u where u.id = wanted.id)
$$;

-- Closing a session, by whatever path, leaves a system message in it.
create or replace function chat_private.note_session_closed() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.chat_messages (session_id, sender_id, type, content, metadata)
  values (
    new.id,
    auth.uid(),
    'system',
    'Session closed',
    jsonb_build_object('event', 'session_closed')
  );
  return null;
end
$$;

create trigger chat_sessions_note_closed
after update of status on public.chat_sessions
for each row
when (old.status = 'active' and new.status = 'closed')
execute function chat_private.note_session_closed();

-- Participants must be users, whatever path inserts the session (supabase-js included).
create or replace function chat_private.check_participants_exist() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  _unknown uuid[] := chat_private.unknown_users(new.participants);
begin
  if cardinality(_unknown) > 0 then
    raise exception 'unknown participants: %', array_to_string(_unknown, ', ')
      using errcode = '22023';
  end if;
  return new;
end
$$;

create trigger chat_sessions_participants_exist
before insert on public.chat_sessions
for each row execute function chat_private.check_participants_exist();

revoke all on function chat_private.unknown_users(uuid[]) from public;
revoke all on function chat_private.check_participants_exist() from public;
revoke all on function chat_private.note_session_closed() from public;
grant execute on function chat_private.unknown_users(uuid[]) to authenticated, service_role;

-- ---------------------------------------------------------------- create_chat_session
create or replace function public.create_chat_session(
  participants uuid[],
  type text default 'support',
  booking_id uuid default null,
  title text default null
) returns public.chat_sessions
language plpgsql
security invoker
set search_path = ''
as $$
#variable_conflict use_variable
declare
  _uid uuid := auth.uid();
  _unknown uuid[];
  _row public.chat_sessions;
begin
  if _uid is null then
    raise exception 'not authenticated' using errcode = '28000';
  end if;
  if participants is null or cardinality(participants) = 0 then
    raise exception 'participants must list at least one user' using errcode = '22023';
  end if;
  if cardinality(participants) > 50 then
    raise exception 'participants may list at most 50 users' using errcode = '22023';
  end if;
  if array_position(participants, null) is not null then
    raise exception 'participants must not contain null' using errcode = '22023';
  end if;
  if not chat_private.has_distinct_elements(participants) then
    raise exception 'participants must not repeat a user' using errcode = '22023';
  end if;
  if type is null or type not in ('booking', 'support', 'emergency') then
    raise exception 'type must be one of booking, support, emergency' using errcode = '22023';
  end if;
  if type = 'booking' and booking_id is null then
    raise exception 'a booking session needs a booking_id' using errcode = '22023';
  end if;
  title := nullif(btrim(title), '');
  if char_length(title) > 200 then
    raise exception 'title may be at most 200 characters' using errcode = '22023';
  end if;
  if not (_uid = any(participants)) and not chat_private.is_admin() then
    raise exception 'you can only create sessions you take part in' using errcode = '42501';
  end if;
  _unknown := chat_private.unknown_users(participants);
  if cardinality(_unknown) > 0 then
    raise exception 'unknown participants: %', array_to_string(_unknown, ', ')
      using errcode = '22023';
  end if;

  insert into public.chat_sessions (participants, type, booking_id, title, created_by)
  values (participants, type, booking_id, title, _uid)
  returning * into _row;
  return _row;
end
$$;

comment on function public.create_chat_session(uuid[], text, uuid, text) is
'Create a session the caller takes part in (admins: any). Participants must be users.';

-- ---------------------------------------------------------------- send_chat_message
create or replace function public.send_chat_message(
  session_id uuid,
  content text default null,
  type text default 'text',
  reply_to_message_id uuid default null,
  metadata jsonb default '{}'::jsonb,
  client_message_id text default null
) returns public.chat_messages
language plpgsql
security invoker
set search_path = ''
as $$
#variable_conflict use_variable
declare
  _uid uuid := auth.uid();
  _status text;
  _row public.chat_messages;
begin
  if _uid is null then
    raise exception 'not authenticated' using errcode = '28000';
  end if;
  if session_id is null then
    raise exception 'session_id is required' using errcode = '22023';
  end if;

  -- RLS hides sessions the caller does not take part in: not found, not forbidden.
  select s.status into _status from public.chat_sessions as s
  where s.id = session_id and s.participants @> array[_uid];
  if not found then
    raise exception 'chat session % not found', session_id using errcode = 'P0002';
  end if;
  if _status <> 'active' then
    raise exception 'chat session % is closed', session_id using errcode = '55000';
  end if;

  type := coalesce(type, 'text');
  if type not in ('text', 'audio', 'image', 'file') then
    raise exception 'type must be one of text, audio, image, file' using errcode = '22023';
  end if;
  metadata := coalesce(metadata, '{}'::jsonb);
  if jsonb_typeof(metadata) <> 'object' then
    raise exception 'metadata must be a JSON object' using errcode = '22023';
  end if;
  if pg_column_size(metadata) > 16384 then
    raise exception 'metadata may be at most 16 kB' using errcode = '22023';
  end if;
  if type = 'text' and (content is null or btrim(content) = '') then
    raise exception 'a text message needs non-empty content' using errcode = '22023';
  end if;
  if char_length(content) > 10000 then
    raise exception 'content may be at most 10000 characters' using errcode = '22023';
  end if;
  if client_message_id is not null and char_length(client_message_id) not between 1 and 128 then
    raise exception 'client_message_id must be 1 to 128 characters' using errcode = '22023';
  end if;

  -- File messages (audio, image, file): chat_private.guard_message_insert checks that
  -- metadata.storage_path is the sender's own object in this session, on every insert path.

  -- A retried send returns the row the first attempt stored.
  if client_message_id is not null then
    select m.* into _row from public.chat_messages as m
    where m.session_id = session_id
      and m.sender_id = _uid
      and m.client_message_id = client_message_id;
    if found then
      return _row;
    end if;
  end if;

  if reply_to_message_id is not null and not exists (
    select 1 from public.chat_messages as m
    where m.id = reply_to_message_id and m.session_id = session_id
  ) then
    raise exception 'reply_to_message_id is not a message of this session'
      using errcode = '22023';
  end if;

  insert into public.chat_messages (
    session_id, sender_id, type, content, reply_to_message_id, metadata, client_message_id
  )
  values (session_id, _uid, type, content, reply_to_message_id, metadata, client_message_id)
  on conflict on constraint chat_messages_client_message_key do nothing
  returning * into _row;

  if _row.id is null then
    -- A concurrent retry with the same client_message_id won the race.
    select m.* into _row from public.chat_messages as m
    where m.session_id = session_id
      and m.sender_id = _uid
      and m.client_message_id = client_message_id;
  end if;
  return _row;
end
$$;

comment on function public.send_chat_message(uuid, text, text, uuid, jsonb, text) is
'Send a message as the caller to an active session they take part in. Idempotent per client_message_id.';

-- ---------------------------------------------------------------- mark_chat_messages_read
create or replace function public.mark_chat_messages_read(
  session_id uuid,
  up_to_message_id uuid default null
) returns integer
language plpgsql
security invoker
set search_path = ''
as $$
#variable_conflict use_variable
declare
  _uid uuid := auth.uid();
  _target public.chat_messages;
  _cur_at timestamptz := '-infinity'::timestamptz;
  _cur_seq bigint := 0;
  _count integer;
begin
  if _uid is null then
    raise exception 'not authenticated' using errcode = '28000';
  end if;
  if not exists (
    select 1 from public.chat_sessions as s
    where s.id = session_id and s.participants @> array[_uid]
  ) then
    raise exception 'chat session % not found', session_id using errcode = 'P0002';
  end if;

  if up_to_message_id is null then
    select m.* into _target from public.chat_messages as m
    where m.session_id = session_id
    order by m.created_at desc, m.seq desc
    limit 1;
    if not found then
      return 0;
    end if;
  else
    select m.* into _target from public.chat_messages as m
    where m.id = up_to_message_id and m.session_id = session_id;
    if not found then
      raise exception 'up_to_message_id is not a message of this session'
        using errcode = '22023';
    end if;
  end if;

  select r.last_read_at, r.last_read_seq into _cur_at, _cur_seq
  from public.chat_read_state as r
  where r.session_id = session_id and r.user_id = _uid;
  if found and (_cur_at, _cur_seq) >= (_target.created_at, _target.seq) then
    return 0;
  end if;
  _cur_at := coalesce(_cur_at, '-infinity');
  _cur_seq := coalesce(_cur_seq, 0);

  select count(*) into _count from public.chat_messages as m
  where m.session_id = session_id
    and (m.created_at, m.seq) > (_cur_at, _cur_seq)
    and (m.created_at, m.seq) <= (_target.created_at, _target.seq)
    and m.sender_id is distinct from _uid;

  insert into public.chat_read_state as r (
    session_id, user_id, last_read_message_id, last_read_at, last_read_seq, updated_at
  )
  values (session_id, _uid, _target.id, _target.created_at, _target.seq, now())
  on conflict on constraint chat_read_state_pkey do update
    set last_read_message_id = excluded.last_read_message_id,
        last_read_at = excluded.last_read_at,
        last_read_seq = excluded.last_read_seq,
        updated_at = excluded.updated_at
    where (r.last_read_at, r.last_read_seq) < (excluded.last_read_at, excluded.last_read_seq);

  return _count;
end
$$;

comment on function public.mark_chat_messages_read(uuid, uuid) is
'Advance the caller''s read cursor to a message (default: the newest). Returns how many messages from others became read.';

-- ---------------------------------------------------------------- list_my_chat_sessions
-- Per session, for the caller: messages from others past their read cursor, and the
-- newest message. Security invoker: RLS applies. Shared by the session list and by
-- get_chat_session.
create or replace function chat_private.session_activity(target_session_id uuid)
returns table (unread_count bigint, last_message jsonb)
language sql
stable
security invoker
set search_path = ''
as $$
  select
    (
      select count(*)
      from public.chat_messages as m
      left join public.chat_read_state as r
        on r.session_id = m.session_id and r.user_id = (select auth.uid())
      where m.session_id = target_session_id
        and (m.created_at, m.seq)
        > (coalesce(r.last_read_at, '-infinity'::timestamptz), coalesce(r.last_read_seq, 0))
        and m.sender_id is distinct from (select auth.uid())
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
      where m.session_id = target_session_id
      order by m.created_at desc, m.seq desc
      limit 1
    ) as last_message
$$;

revoke all on function chat_private.session_activity(uuid) from public;
grant execute on function chat_private.session_activity(uuid) to authenticated, service_role;

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
  from public.chat_sessions as s
  cross join lateral chat_private.session_activity(s.id) as a
  where s.participants @> array[(select auth.uid())]
  order by coalesce(s.last_message_at, s.created_at) desc, s.id
  limit least(greatest(coalesce(max_rows, 50), 1), 200)
  offset greatest(coalesce(skip_rows, 0), 0)
$$;

comment on function public.list_my_chat_sessions(integer, integer) is
'The caller''s sessions, newest activity first, with unread_count and the last message.';

-- ---------------------------------------------------------------- get_chat_messages
create or replace function public.get_chat_messages(
  session_id uuid,
  max_rows integer default 50,
  skip_rows integer default 0,
  before timestamptz default null,
  before_id uuid default null
) returns setof public.chat_messages
language plpgsql
stable
security invoker
set search_path = ''
as $$
#variable_conflict use_variable
declare
  _uid uuid := auth.uid();
  _at timestamptz := 'infinity'::timestamptz;
  _seq bigint := 9223372036854775807;
begin
  if _uid is null then
    raise exception 'not authenticated' using errcode = '28000';
  end if;
  if max_rows is null or max_rows not between 1 and 1000 then
    raise exception 'limit must be between 1 and 1000' using errcode = '22023';
  end if;
  if skip_rows is null or skip_rows < 0 then
    raise exception 'offset must not be negative' using errcode = '22023';
  end if;
  if not exists (
    select 1 from public.chat_sessions as s
    where s.id = session_id and s.participants @> array[_uid]
  ) then
    raise exception 'chat session % not found', session_id using errcode = 'P0002';
  end if;
  if before_id is not null then
    select m.created_at, m.seq into _at, _seq from public.chat_messages as m
    where m.id = before_id and m.session_id = session_id;
    if not found then
      raise exception 'before_id is not a message of this session' using errcode = '22023';
    end if;
  end if;

  -- Sentinels instead of "is null or" keep both bounds usable as index conditions.
  return query
  select m.* from public.chat_messages as m
  where m.session_id = session_id
    and m.created_at < coalesce(before, 'infinity'::timestamptz)
    and (m.created_at, m.seq) < (_at, _seq)
  order by m.created_at desc, m.seq desc
  limit max_rows
  offset skip_rows;
end
$$;

comment on function public.get_chat_messages(uuid, integer, integer, timestamptz, uuid) is
'A page of a session''s messages, newest first: limit/offset, before (timestamp), before_id (keyset on created_at, seq).';

-- ---------------------------------------------------------------- close_chat_session
create or replace function public.close_chat_session(session_id uuid)
returns public.chat_sessions
language plpgsql
security invoker
set search_path = ''
as $$
#variable_conflict use_variable
declare
  _uid uuid := auth.uid();
  _row public.chat_sessions;
begin
  if _uid is null then
    raise exception 'not authenticated' using errcode = '28000';
  end if;
  select s.* into _row from public.chat_sessions as s
  where s.id = session_id and s.participants @> array[_uid];
  if not found then
    raise exception 'chat session % not found', session_id using errcode = 'P0002';
  end if;
  if _row.status = 'closed' then
    return _row;
  end if;
  update public.chat_sessions as s set status = 'closed'
  where s.id = session_id;
  -- Read back: the closing system message has moved last_message_at since.
  select s.* into _row from public.chat_sessions as s where s.id = session_id;
  return _row;
end
$$;

comment on function public.close_chat_session(uuid) is
'Close a session the caller takes part in; a system message records it. Closing twice is a no-op.';

-- ---------------------------------------------------------------- grants
revoke all on function public.create_chat_session(uuid[], text, uuid, text) from public, anon;
revoke all on function public.send_chat_message(uuid, text, text, uuid, jsonb, text)
from public, anon;
revoke all on function public.mark_chat_messages_read(uuid, uuid) from public, anon;
revoke all on function public.list_my_chat_sessions(integer, integer) from public, anon;
revoke all on function public.get_chat_messages(uuid, integer, integer, timestamptz, uuid)
from public, anon;
revoke all on function public.close_chat_session(uuid) from public, anon;

grant execute on function public.create_chat_session(uuid[], text, uuid, text)
to authenticated, service_role;
grant execute on function public.send_chat_message(uuid, text, text, uuid, jsonb, text)
to authenticated, service_role;
grant execute on function public.mark_chat_messages_read(uuid, uuid)
to authenticated, service_role;
grant execute on function public.list_my_chat_sessions(integer, integer)
to authenticated, service_role;
grant execute on function public.get_chat_messages(uuid, integer, integer, timestamptz, uuid)
to authenticated, service_role;
grant execute on function public.close_chat_session(uuid) to authenticated, service_role;
