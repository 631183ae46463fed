-- Webhooks to the host platform (Standard Webhooks): the durable outbox, the open waiting
-- periods of participants with unread messages, and the reader's cursor. All in
-- chat_private: no API role (anon, authenticated, service_role) has any privilege on them.
-- Only the service's webhook worker, connected as the database owner, reads and writes
-- them; admins reach the outbox through the audited functions of the next migration.
-- Without WEBHOOK_URL the worker does not run and these tables stay empty.

-- ---------------------------------------------------------------- tables

create table chat_private.webhook_outbox (
  id uuid primary key default gen_random_uuid(),
  event_type text not null,
  dedupe_key text not null,
  session_id uuid,
  user_id uuid,
  payload jsonb not null,
  status text not null default 'pending',
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  retry_since timestamptz not null default now(),
  created_at timestamptz not null default now(),
  last_attempt_at timestamptz,
  last_status integer,
  last_error text,
  delivered_at timestamptz,
  dead_reason text,
  replays integer not null default 0,
  constraint webhook_outbox_dedupe_key unique (dedupe_key),
  constraint webhook_outbox_status_check check (status in ('pending', 'delivered', 'dead')),
  constraint webhook_outbox_event_type_check check (
    event_type in ('chat.message.waiting', 'chat.session.created', 'chat.session.closed')
  ),
  constraint webhook_outbox_dead_reason_check check (
    (status = 'dead') = (dead_reason is not null)
    and dead_reason in ('expired', 'gone', 'rejected')
  ),
  constraint webhook_outbox_last_error_check check (char_length(last_error) <= 500)
);

comment on table chat_private.webhook_outbox is
'One row per webhook event to the host platform; the row id is the stable webhook-id. Filled and delivered by the service''s webhook worker (one leader per database).';
comment on column chat_private.webhook_outbox.dedupe_key is
'What the event is about (type, session, user, first message): the same thing is never enqueued twice.';
comment on column chat_private.webhook_outbox.payload is
'The Standard Webhooks body, {type, timestamp, data}: fixed at enqueue, the same bytes on every attempt.';
comment on column chat_private.webhook_outbox.next_attempt_at is
'When the next attempt is due; while an attempt runs, the end of its lease (a worker that dies mid-attempt is retried then).';
comment on column chat_private.webhook_outbox.retry_since is
'Start of the retry window (enqueue, or the last replay): after it has lasted the window (24 h) the row goes dead.';
comment on column chat_private.webhook_outbox.dead_reason is
'expired (retry window over), gone (410 from the receiver), rejected (another 3xx or 4xx).';

create table chat_private.webhook_waiting (
  session_id uuid not null references public.chat_sessions (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  since_at timestamptz not null,
  since_seq bigint not null,
  due_at timestamptz not null,
  status text not null default 'pending',
  event_id uuid,
  created_at timestamptz not null default now(),
  primary key (session_id, user_id),
  constraint webhook_waiting_status_check check (status in ('pending', 'notified')),
  constraint webhook_waiting_event_check check ((status = 'notified') = (event_id is not null))
);

comment on table chat_private.webhook_waiting is
'A waiting period: a participant has unread messages from others since (since_at, since_seq). Pending until due_at, then notified once; reading or joining ends it.';
comment on column chat_private.webhook_waiting.event_id is
'The chat.message.waiting outbox row sent for this period (no foreign key: the outbox is purged).';

create table chat_private.webhook_cursor (
  id boolean primary key default true,
  snapshot pg_snapshot not null,
  horizon timestamptz not null,
  updated_at timestamptz not null default now(),
  constraint webhook_cursor_single_row check (id)
);

comment on table chat_private.webhook_cursor is
'Where the webhook reader is: every message whose writing transaction is visible in snapshot has been read; sessions created before horizon have been announced.';

-- ---------------------------------------------------------------- indexes
-- The delivery worker's queue: due pending rows, oldest first.
create index webhook_outbox_due on chat_private.webhook_outbox (next_attempt_at)
where status = 'pending';
-- The admin list (by status, newest first) and the retention purge.
create index webhook_outbox_status_created on chat_private.webhook_outbox (status, created_at desc);
create index webhook_outbox_created_at on chat_private.webhook_outbox (created_at desc);
-- Pending periods by due time; foreign-key checks when a user is deleted.
create index webhook_waiting_due on chat_private.webhook_waiting (due_at) where status = 'pending';
create index webhook_waiting_user_id on chat_private.webhook_waiting (user_id);
-- The reader's announcement of closed sessions is by message; created sessions by time
-- (chat_sessions_created_at exists).

-- ---------------------------------------------------------------- grants
revoke all on chat_private.webhook_outbox, chat_private.webhook_waiting,
chat_private.webhook_cursor from public, anon, authenticated, service_role;

-- ---------------------------------------------------------------- row level security
-- No policies: nothing for any API role even if a grant slipped in. The owner (the
-- service's database user) is not subject to RLS.
alter table chat_private.webhook_outbox enable row level security;
alter table chat_private.webhook_waiting enable row level security;
alter table chat_private.webhook_cursor enable row level security;
