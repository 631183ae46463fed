-- Supabase Realtime Broadcast from the database: apps that speak only supabase-js hear the
-- conversation on one private channel per session, topic 'chat:<session_id>'.
--
-- * Triggers send, on every path that writes (the relay's group commit, PostgREST, SQL):
--   new_message (the socket event's payload), messages_read, messages_delivered,
--   session_updated and user_erased, through realtime.send() (private = true).
--   chat_private.realtime_settings.broadcast switches them off.
-- * Policies on realtime.messages decide who may join such a topic (read: participants and
--   admins) and who may send broadcast and track presence there (write: participants).
--   Realtime checks a join or a send by inserting probe rows of (topic, extension) only,
--   so the policies decide on realtime.topic(), extension and the caller's claims: one
--   primary-key lookup of the session. A participant writing through the database (not
--   Realtime's probe) may only send typing events: new_message and the other server events
--   come from these triggers alone. Topics of other shapes are left to the platform.
-- * Typing that a supabase-js client sends through the database (broadcast_chat_typing(),
--   or its own insert) is also told to the relays (NOTIFY chat_events, kind typing), which
--   emit it to their Socket.IO rooms; the relays send their sockets' typing to the topic.
-- Without a realtime schema (a plain PostgreSQL) nothing here touches realtime.

-- ---------------------------------------------------------------- settings
create table chat_private.realtime_settings (
  id boolean primary key default true,
  broadcast boolean not null default true,
  updated_at timestamptz not null default now(),
  constraint realtime_settings_single_row check (id)
);

comment on table chat_private.realtime_settings is
'broadcast: whether chat events are sent to Supabase Realtime topics chat:<session_id> (on where schema realtime exists).';

insert into chat_private.realtime_settings (id) values (true) on conflict (id) do nothing;

revoke all on chat_private.realtime_settings from public, anon, authenticated, service_role;
alter table chat_private.realtime_settings enable row level security;

-- ---------------------------------------------------------------- helpers
-- 'chat:<uuid>' -> the session id; anything else -> null.
create or replace function chat_private.topic_session(topic text) returns uuid
language sql
immutable
set search_path = ''
as $$
  select case
    when topic ~ '^chat:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
      then substr(topic, 6)::uuid
  end
$$;

-- May the caller join (read) or send on (write) a session's topic? Participants both,
-- admins read only; no one writes to a frozen session's topic, nor a suspended user to any
-- (the moderation migration adds frozen_at and chat_private.suspensions: plpgsql binds
-- them when the function first runs). One primary-key lookup, and one more on writes.
create or replace function chat_private.can_use_topic(topic text, write boolean) returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  _session uuid := chat_private.topic_session(topic);
  _uid uuid := auth.uid();
  _participants uuid [];
  _frozen timestamptz;
begin
  if _session is null or _uid is null then
    return false;
  end if;
  select s.participants, s.frozen_at into _participants, _frozen
  from public.chat_sessions as s where s.id = _session;
  if not found then
    return false;
  end if;
  if not write then
    return _participants @> array[_uid] or chat_private.is_admin();
  end if;
  return _participants @> array[_uid] and _frozen is null
    and chat_private.suspended_until(_uid) is null;
end
$$;

-- The caller's own display name (never another user's).
create or replace function chat_private.my_display_name() returns text
language sql
stable
security definer
set search_path = ''
as $$
  select chat_private.display_name(u.email, u.raw_user_meta_data) from auth.users as u
  where u.id = auth.uid()
$$;

create or replace function chat_private.broadcast_enabled() returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select coalesce(
    (select r.broadcast from chat_private.realtime_settings as r where r.id), false
  ) and to_regprocedure('realtime.send(jsonb, text, text, boolean)') is not null
$$;

create or replace function chat_private.realtime_time(at_time timestamptz) returns text
language sql
immutable
set search_path = ''
as $$
  select to_char(at_time at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

create or replace function chat_private.user_display_name(target uuid) returns text
language sql
stable
security definer
set search_path = ''
as $$
  select chat_private.display_name(u.email, u.raw_user_meta_data) from auth.users as u
  where u.id = target
$$;

-- ---------------------------------------------------------------- broadcasting triggers
-- The triggers exist only where schema realtime does (created below). Each reads the
-- switch and the sender's name itself (no helper calls on the message path) and sends
-- through chat_private.broadcast(), defined below with the realtime schema.
create or replace function chat_private.broadcast_message() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  _name text;
begin
  if not coalesce((select r.broadcast from chat_private.realtime_settings as r where r.id), false) then
    return null;
  end if;
  if new.sender_id is not null then
    select chat_private.display_name(u.email, u.raw_user_meta_data) into _name
    from auth.users as u where u.id = new.sender_id;
  end if;
  perform chat_private.broadcast(
    jsonb_build_object(
      'id', new.id,
      'session_id', new.session_id,
      'sender_id', new.sender_id,
      'sender_name', case
        when new.type = 'system' then coalesce(_name, 'System')
        when new.sender_id is null then 'Deleted user'
        else coalesce(_name, 'user')
      end,
      'type', new.type,
      'content', new.content,
      'reply_to_message_id', new.reply_to_message_id,
      'metadata', new.metadata - 'url',
      'client_message_id', new.client_message_id,
      'created_at', to_char(new.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
      'seq', new.seq,
      'deleted', new.deleted_at is not null,
      'deleted_reason', new.deleted_reason,
      'edited_at', null
    ),
    'new_message',
    new.session_id
  );
  return null;
end
$$;

create or replace function chat_private.broadcast_read_state() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if not coalesce((select r.broadcast from chat_private.realtime_settings as r where r.id), false) then
    return null;
  end if;
  perform chat_private.broadcast(
    jsonb_build_object(
      'user_id', new.user_id,
      'user_name', coalesce(chat_private.user_display_name(new.user_id), 'user'),
      'session_id', new.session_id,
      'up_to_message_id', new.last_read_message_id,
      'timestamp', chat_private.realtime_time(now())
    ),
    'messages_read',
    new.session_id
  );
  return null;
end
$$;

create or replace function chat_private.broadcast_delivery_state() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if not coalesce((select r.broadcast from chat_private.realtime_settings as r where r.id), false) then
    return null;
  end if;
  perform chat_private.broadcast(
    jsonb_build_object(
      'user_id', new.user_id,
      'session_id', new.session_id,
      'up_to_message_id', new.last_delivered_message_id,
      'timestamp', chat_private.realtime_time(now())
    ),
    'messages_delivered',
    new.session_id
  );
  return null;
end
$$;

create or replace function chat_private.broadcast_session() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if not coalesce((select r.broadcast from chat_private.realtime_settings as r where r.id), false) then
    return null;
  end if;
  perform chat_private.broadcast(
    jsonb_build_object(
      'session_id', new.id, 'status', new.status, 'timestamp', chat_private.realtime_time(now())
    ),
    'session_updated',
    new.id
  );
  return null;
end
$$;

-- An erasure records the sessions the user left once it is done: each topic is told.
create or replace function chat_private.broadcast_erasure() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  _session uuid;
begin
  if new.kind <> 'user' or new.subject is null
    or not coalesce((select r.broadcast from chat_private.realtime_settings as r where r.id), false) then
    return null;
  end if;
  foreach _session in array new.sessions loop
    perform chat_private.broadcast(
      jsonb_build_object(
        'user_id', new.subject, 'session_id', _session, 'mode', new.mode,
        'timestamp', chat_private.realtime_time(now())
      ),
      'user_erased',
      _session
    );
  end loop;
  return null;
end
$$;

-- ---------------------------------------------------------------- typing, both ways
-- A typing event on a session topic written through the database by a participant
-- (broadcast_chat_typing(), or supabase-js inserting the row itself) reaches the relays'
-- Socket.IO rooms. Rows the relays send themselves carry payload.origin = 'relay' and are
-- not echoed back.
create or replace function chat_private.relay_topic_typing() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  _session uuid := chat_private.topic_session(new.topic);
  -- The typer is whoever wrote the row (the insert policy made sure it is a participant),
  -- never what the payload says.
  _user text := auth.uid()::text;
begin
  if _session is null or new.payload ->> 'origin' is not distinct from 'relay'
    or _user is null then
    return null;
  end if;
  perform pg_notify(
    'chat_events',
    json_build_object(
      'kind', 'typing', 'session_id', _session, 'user_id', _user,
      'typing', new.event = 'typing_start'
    )::text
  );
  return null;
end
$$;

-- Sends a typing event to the session's topic as the caller (RLS decides), for apps
-- without Realtime's client; supabase-js apps may use channel.send() instead (Realtime
-- fans it out, but only subscribers of the topic see it, not the Socket.IO rooms).
create or replace function public.broadcast_chat_typing(session_id uuid, typing boolean default true)
returns void
language plpgsql
set search_path = ''
as $$
declare
  _uid uuid := auth.uid();
begin
  if _uid is null then
    raise exception 'not authenticated' using errcode = '28000';
  end if;
  if not chat_private.can_use_topic('chat:' || broadcast_chat_typing.session_id, true) then
    raise exception 'chat session % not found', broadcast_chat_typing.session_id using errcode = 'P0002';
  end if;
  if to_regprocedure('realtime.send(jsonb, text, text, boolean)') is null then
    raise exception 'Supabase Realtime is not installed in this database' using errcode = '55000';
  end if;
  perform set_config('realtime.topic', 'chat:' || broadcast_chat_typing.session_id, true);
  execute 'insert into realtime.messages (topic, extension, event, payload, private) values ($1, $2, $3, $4, true)'
  using
    'chat:' || broadcast_chat_typing.session_id,
    'broadcast',
    case when typing then 'typing_start' else 'typing_stop' end,
    jsonb_build_object(
      'user_id', _uid,
      'user_name', coalesce(chat_private.my_display_name(), 'user'),
      'session_id', broadcast_chat_typing.session_id,
      'timestamp', chat_private.realtime_time(now())
    );
end
$$;

comment on function public.broadcast_chat_typing(uuid, boolean) is
'Participants only: tell the session''s Realtime topic (chat:<session_id>) and its Socket.IO room that you are typing (or stopped).';

-- ---------------------------------------------------------------- realtime.messages
-- Only where schema realtime exists (hosted Supabase; the local stand-in).
do $$
begin
  if to_regclass('realtime.messages') is null then
    raise notice 'schema realtime not found: chat events are not broadcast';
    return;
  end if;
  -- One row in realtime.messages per event, as realtime.send() writes it, but without its
  -- subtransaction (a group commit of 256 messages would open 256 of them) when Realtime's
  -- default partition guarantees the insert a partition; else through realtime.send(),
  -- which turns a failure into a warning.
  if to_regclass('realtime.messages_default') is not null then
    execute $fn$
      create or replace function chat_private.broadcast(payload jsonb, event text, session_id uuid)
      returns void
      language sql
      security definer
      set search_path = ''
      as $body$
        insert into realtime.messages (payload, event, topic, private, extension)
        values (payload, event, 'chat:' || session_id, true, 'broadcast')
      $body$
    $fn$;
  else
    execute $fn$
      create or replace function chat_private.broadcast(payload jsonb, event text, session_id uuid)
      returns void
      language sql
      security definer
      set search_path = ''
      as $body$
        select realtime.send(payload, event, 'chat:' || session_id, true)
      $body$
    $fn$;
  end if;
  revoke all on function chat_private.broadcast(jsonb, text, uuid)
  from public, anon, authenticated, service_role;
  grant execute on function chat_private.broadcast(jsonb, text, uuid) to service_role;

  execute $policy$
    create policy "Session topics are readable by participants and admins"
    on realtime.messages
    for select
    to authenticated
    using (
      realtime.messages.extension in ('broadcast', 'presence')
      and realtime.messages.topic = (select realtime.topic())
      and (select chat_private.can_use_topic((select realtime.topic()), false))
    )
  $policy$;
  execute $policy$
    create policy "Participants can broadcast and track presence on their topic"
    on realtime.messages
    for insert
    to authenticated
    with check (
      realtime.messages.extension in ('broadcast', 'presence')
      and realtime.messages.topic = (select realtime.topic())
      and (realtime.messages.event is null or realtime.messages.event in ('typing_start', 'typing_stop'))
      and (select chat_private.can_use_topic((select realtime.topic()), true))
    )
  $policy$;
  execute $trigger$
    create trigger chat_topic_typing
    after insert on realtime.messages
    for each row
    when (
      new.event in ('typing_start', 'typing_stop') and new.extension = 'broadcast'
      and new.topic like 'chat:%'
    )
    execute function chat_private.relay_topic_typing()
  $trigger$;
  execute $trigger$
    create trigger chat_messages_broadcast
    after insert on public.chat_messages
    for each row execute function chat_private.broadcast_message()
  $trigger$;
  execute $trigger$
    create trigger chat_read_state_broadcast
    after insert or update on public.chat_read_state
    for each row execute function chat_private.broadcast_read_state()
  $trigger$;
  execute $trigger$
    create trigger chat_delivery_state_broadcast
    after insert or update on public.chat_delivery_state
    for each row execute function chat_private.broadcast_delivery_state()
  $trigger$;
  execute $trigger$
    create trigger chat_sessions_broadcast
    after update of status on public.chat_sessions
    for each row when (old.status is distinct from new.status)
    execute function chat_private.broadcast_session()
  $trigger$;
  execute $trigger$
    create trigger chat_erasures_broadcast
    after update of sessions on chat_private.erasures
    for each row when (cardinality(new.sessions) > 0)
    execute function chat_private.broadcast_erasure()
  $trigger$;
end
$$;

revoke all on function chat_private.topic_session(text), chat_private.can_use_topic(text, boolean),
chat_private.broadcast_enabled(), chat_private.realtime_time(timestamptz),
chat_private.user_display_name(uuid), chat_private.broadcast_message(), chat_private.broadcast_read_state(),
chat_private.broadcast_delivery_state(), chat_private.broadcast_session(),
chat_private.broadcast_erasure(), chat_private.relay_topic_typing(),
public.broadcast_chat_typing(uuid, boolean)
from public, anon, authenticated, service_role;
-- The policies run as the caller (Realtime sets the role from the token).
revoke all on function chat_private.my_display_name() from public, anon, authenticated, service_role;
grant execute on function chat_private.can_use_topic(text, boolean), chat_private.topic_session(text),
chat_private.my_display_name(), chat_private.realtime_time(timestamptz),
public.broadcast_chat_typing(uuid, boolean) to authenticated;
grant execute on function chat_private.broadcast_enabled() to service_role;
