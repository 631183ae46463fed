-- Chat data model: sessions, messages, per-user read state, audit log, monitoring events.
-- Authorization lives in the policies migration; business rules in the functions one.

create schema if not exists chat_private;
comment on schema chat_private is
'Helpers for policies and triggers. Not exposed through the Data API.';
revoke all on schema chat_private from public;

-- participants has no duplicates (a CHECK cannot hold a subquery, so a helper does it).
create or replace function chat_private.has_distinct_elements(items uuid[]) returns boolean
language sql
immutable
strict
set search_path = ''
as $$
  select count(*) = count(distinct item) from unnest(items) as item
$$;

-- ---------------------------------------------------------------- tables

create table public.chat_sessions (
  id uuid primary key default gen_random_uuid(),
  participants uuid[] not null,
  type text not null,
  booking_id uuid,
  status text not null default 'active',
  title text,
  created_by uuid default auth.uid() references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  last_message_at timestamptz,
  closed_at timestamptz,
  constraint chat_sessions_type_check check (type in ('booking', 'support', 'emergency')),
  constraint chat_sessions_status_check check (status in ('active', 'closed')),
  constraint chat_sessions_participants_check check (
    cardinality(participants) between 1 and 50
    and array_position(participants, null) is null
    and chat_private.has_distinct_elements(participants)
  ),
  constraint chat_sessions_booking_check check (type <> 'booking' or booking_id is not null),
  constraint chat_sessions_title_check check (char_length(title) between 1 and 200),
  constraint chat_sessions_closed_check check ((status = 'closed') = (closed_at is not null))
);

comment on table public.chat_sessions is
'A conversation between a client and readers (booking), or with support. Participants only.';
comment on column public.chat_sessions.participants is
'auth.users ids allowed in the session: 1 to 50, no duplicates. Indexed with GIN.';
comment on column public.chat_sessions.booking_id is
'The host platform''s booking this chat belongs to; required when type is booking.';
comment on column public.chat_sessions.last_message_at is
'created_at of the newest message, kept by a trigger; orders the session list.';

create table public.chat_messages (
  id uuid primary key default gen_random_uuid(),
  seq bigint generated always as identity,
  session_id uuid not null references public.chat_sessions (id) on delete cascade,
  sender_id uuid default auth.uid() references auth.users (id) on delete set null,
  type text not null default 'text',
  content text,
  reply_to_message_id uuid,
  metadata jsonb not null default '{}'::jsonb,
  client_message_id text,
  created_at timestamptz not null default now(),
  xact_id xid8 not null default pg_current_xact_id(),
  constraint chat_messages_seq_key unique (seq),
  constraint chat_messages_id_session_key unique (id, session_id),
  constraint chat_messages_reply_same_session_fkey foreign key (reply_to_message_id, session_id)
  references public.chat_messages (id, session_id) on delete set null (reply_to_message_id),
  constraint chat_messages_client_message_key unique (session_id, sender_id, client_message_id),
  constraint chat_messages_type_check check (type in ('text', 'audio', 'image', 'file', 'system')),
  constraint chat_messages_content_check check (char_length(content) <= 10000),
  constraint chat_messages_text_content_check check (
    type not in ('text', 'system') or (content is not null and btrim(content) <> '')
  ),
  constraint chat_messages_metadata_check check (
    jsonb_typeof(metadata) = 'object' and pg_column_size(metadata) <= 16384
  ),
  constraint chat_messages_client_message_id_check check (
    char_length(client_message_id) between 1 and 128
  )
);

comment on table public.chat_messages is
'Every message of every session: text, voice (audio), image, file, and system notices.';
comment on column public.chat_messages.seq is
'Total order of messages: ties on created_at are broken by seq. Keyset pages and cursors use (created_at, seq).';
comment on column public.chat_messages.sender_id is
'Author; null for a deleted user. System messages carry the user whose action caused them.';
comment on column public.chat_messages.reply_to_message_id is
'A message of the same session (enforced by a composite foreign key).';
comment on column public.chat_messages.metadata is
'Type-specific details: file_name, mime_type, size_bytes, storage_path, duration_ms, width, height.';
comment on column public.chat_messages.xact_id is
'Transaction that wrote the row. seq and created_at are taken before commit; the changefeed replays rows not visible in its last snapshot (pg_visible_in_snapshot).';
comment on column public.chat_messages.client_message_id is
'Sender-chosen id that makes a retried send idempotent: one row per (session, sender, id).';

create table public.chat_read_state (
  session_id uuid not null references public.chat_sessions (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  last_read_message_id uuid not null,
  last_read_at timestamptz not null,
  last_read_seq bigint not null,
  updated_at timestamptz not null default now(),
  primary key (session_id, user_id),
  constraint chat_read_state_message_fkey foreign key (last_read_message_id, session_id)
  references public.chat_messages (id, session_id) on delete cascade
);

comment on table public.chat_read_state is
'Per user and session read cursor: everything up to (last_read_at, last_read_seq) is read.';
comment on column public.chat_read_state.last_read_at is
'created_at of last_read_message_id, copied so unread counts are one index range scan.';

create table public.chat_audit_logs (
  id bigint generated always as identity primary key,
  actor_id uuid,
  actor_role text not null,
  action text not null,
  session_id uuid,
  message_id uuid,
  details jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  constraint chat_audit_logs_action_check check (char_length(action) between 1 and 100)
);

comment on table public.chat_audit_logs is
'Append-only record of who did what. No role may update or delete a row (trigger-enforced).';
comment on column public.chat_audit_logs.actor_role is
'App role of the actor (client, reader, admin, super_admin) or service_role.';
comment on column public.chat_audit_logs.session_id is
'Not a foreign key on purpose: the audit outlives the session it describes.';

create table public.chat_monitoring (
  id bigint generated always as identity primary key,
  event_type text not null,
  user_id uuid,
  session_id uuid,
  details jsonb not null default '{}'::jsonb,
  timestamp timestamptz not null default now(),
  constraint chat_monitoring_event_type_check check (char_length(event_type) between 1 and 64)
);

comment on table public.chat_monitoring is
'Operational events (connect, disconnect, join, leave, upload, error, ...), written in batches.';

-- ---------------------------------------------------------------- indexes
-- Session list and the participants policy: participants @> array[uid].
create index chat_sessions_participants on public.chat_sessions using gin (participants);
-- Message page (newest first, keyset on (created_at, seq)), `before`, unread counts.
create index chat_messages_session_created_seq
on public.chat_messages (session_id, created_at desc, seq desc);
-- Foreign-key checks when a replied-to message goes away.
create index chat_messages_reply_to_message_id
on public.chat_messages (reply_to_message_id) where reply_to_message_id is not null;
-- Foreign-key checks when a user is deleted.
create index chat_messages_sender_id on public.chat_messages (sender_id);
-- The changefeed's catch-up: xact_id >= pg_snapshot_xmin(snapshot) and not visible in it.
create index chat_messages_xact_id on public.chat_messages (xact_id);
create index chat_read_state_user_id on public.chat_read_state (user_id);
create index chat_read_state_message on public.chat_read_state (last_read_message_id, session_id);
-- Admin audit queries: by time, by session, by actor.
create index chat_audit_logs_created_at on public.chat_audit_logs (created_at desc);
create index chat_audit_logs_session_id on public.chat_audit_logs (session_id, created_at desc);
create index chat_audit_logs_actor_id on public.chat_audit_logs (actor_id, created_at desc);
-- The seed's monitoring queries: events of the last hour, by session.
create index chat_monitoring_timestamp on public.chat_monitoring (timestamp desc);
create index chat_monitoring_session_id on public.chat_monitoring (session_id, timestamp desc);
create index chat_sessions_created_at on public.chat_sessions (created_at desc);
-- The sessions select policy (participants or creator) and the foreign key on delete.
create index chat_sessions_created_by on public.chat_sessions (created_by);

-- ---------------------------------------------------------------- grants
-- Nothing is left to default privileges: revoke all, then grant what each role needs.
revoke all on public.chat_sessions, public.chat_messages, public.chat_read_state,
public.chat_audit_logs, public.chat_monitoring from anon, authenticated, service_role, public;

-- Identity columns need no sequence privilege to insert: the API roles get none.
revoke all on sequence public.chat_messages_seq_seq, public.chat_audit_logs_id_seq,
public.chat_monitoring_id_seq from anon, authenticated, public;

grant select, insert on public.chat_sessions to authenticated;
grant update (title, status) on public.chat_sessions to authenticated;
grant select, insert on public.chat_messages to authenticated;
grant select, insert on public.chat_read_state to authenticated;
grant update (last_read_message_id, last_read_at, last_read_seq, updated_at)
on public.chat_read_state to authenticated;

grant select, insert, update, delete on public.chat_sessions, public.chat_messages,
public.chat_read_state to service_role;
grant select, insert on public.chat_audit_logs to service_role;
grant select, insert, delete on public.chat_monitoring to service_role;

-- ---------------------------------------------------------------- triggers
-- Columns that never change after insert.
create or replace function chat_private.guard_session_update() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.id is distinct from old.id
    or new.participants is distinct from old.participants
    or new.type is distinct from old.type
    or new.booking_id is distinct from old.booking_id
    or new.created_by is distinct from old.created_by
    or new.created_at is distinct from old.created_at then
    raise exception 'chat session id, participants, type, booking_id, created_by and created_at cannot change'
      using errcode = '42501';
  end if;
  -- Only admins (and the service role or the owner) may reopen a closed session.
  if old.status = 'closed' and new.status = 'active'
    and coalesce(auth.role(), '') in ('authenticated', 'anon')
    and not chat_private.is_admin() then
    raise exception 'a closed chat session cannot be reopened' using errcode = '55000';
  end if;
  if new.status = 'closed' and old.status = 'active' then
    new.closed_at := now();
  elsif new.status = 'active' then
    new.closed_at := null;
  end if;
  new.updated_at := now();
  return new;
end
$$;

create trigger chat_sessions_guard_update
before update on public.chat_sessions
for each row execute function chat_private.guard_session_update();

create or replace function chat_private.guard_message_update() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.id is distinct from old.id
    or new.seq is distinct from old.seq
    or new.session_id is distinct from old.session_id
    or new.sender_id is distinct from old.sender_id and new.sender_id is not null
    or new.created_at is distinct from old.created_at then
    raise exception 'chat message id, seq, session_id, sender_id and created_at cannot change'
      using errcode = '42501';
  end if;
  return new;
end
$$;

create trigger chat_messages_guard_update
before update on public.chat_messages
for each row execute function chat_private.guard_message_update();

-- Through the API roles, created_at and xact_id are the server's: a client can neither
-- backdate a message nor hide it from the changefeed's catch-up.
create or replace function chat_private.stamp_message_insert() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.xact_id := pg_current_xact_id();
  if coalesce(auth.role(), '') in ('authenticated', 'anon') then
    new.created_at := now();
  end if;
  return new;
end
$$;

create trigger chat_messages_stamp_insert
before insert on public.chat_messages
for each row execute function chat_private.stamp_message_insert();

-- Audit rows are append-only for every role, the table owner included.
create or replace function chat_private.refuse_audit_change() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception 'chat_audit_logs is append-only: % is not allowed', tg_op
    using errcode = '42501';
end
$$;

create trigger chat_audit_logs_append_only
before update or delete on public.chat_audit_logs
for each row execute function chat_private.refuse_audit_change();

create trigger chat_audit_logs_no_truncate
before truncate on public.chat_audit_logs
for each statement execute function chat_private.refuse_audit_change();

-- A new message moves its session's last_message_at (the sender may not update sessions).
create or replace function chat_private.touch_session_on_message() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  update public.chat_sessions
  set last_message_at = greatest(coalesce(last_message_at, new.created_at), new.created_at)
  where id = new.session_id;
  return null;
end
$$;

create trigger chat_messages_touch_session
after insert on public.chat_messages
for each row execute function chat_private.touch_session_on_message();
