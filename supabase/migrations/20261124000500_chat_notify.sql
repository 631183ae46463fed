-- Change notifications for the relay (pg_notify on channel chat_events) and the chat
-- tables in the supabase_realtime publication for supabase-js clients.
-- Payloads stay small (ids only, far below NOTIFY's 8000 bytes): the relay reads the row.

create or replace function chat_private.notify_message() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform pg_notify(
    'chat_events',
    json_build_object(
      'kind', 'message',
      'id', new.id,
      'session_id', new.session_id,
      'seq', new.seq
    )::text
  );
  return null;
end
$$;

create trigger chat_messages_notify
after insert on public.chat_messages
for each row execute function chat_private.notify_message();

-- read_count: messages from others that this advance marked read.
create or replace function chat_private.notify_read_state() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  _from_at timestamptz := '-infinity'::timestamptz;
  _from_seq bigint := 0;
  _count integer;
begin
  if tg_op = 'UPDATE' then
    _from_at := old.last_read_at;
    _from_seq := old.last_read_seq;
  end if;
  select count(*) into _count from public.chat_messages as m
  where m.session_id = new.session_id
    and (m.created_at, m.seq) > (_from_at, _from_seq)
    and (m.created_at, m.seq) <= (new.last_read_at, new.last_read_seq)
    and m.sender_id is distinct from new.user_id;
  perform pg_notify(
    'chat_events',
    json_build_object(
      'kind', 'read',
      'session_id', new.session_id,
      'user_id', new.user_id,
      'up_to_message_id', new.last_read_message_id,
      'read_count', _count
    )::text
  );
  return null;
end
$$;

create trigger chat_read_state_notify
after insert or update on public.chat_read_state
for each row execute function chat_private.notify_read_state();

create or replace function chat_private.notify_session() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform pg_notify(
    'chat_events',
    json_build_object(
      'kind', 'session',
      'op', lower(tg_op),
      'id', new.id,
      'status', new.status
    )::text
  );
  return null;
end
$$;

create trigger chat_sessions_notify
after insert or update of status, title on public.chat_sessions
for each row execute function chat_private.notify_session();

revoke all on function chat_private.notify_message() from public;
revoke all on function chat_private.notify_read_state() from public;
revoke all on function chat_private.notify_session() from public;

alter table public.chat_messages replica identity full;
alter publication supabase_realtime add table public.chat_sessions, public.chat_messages,
public.chat_read_state;
