-- The original service's own schema (its design document: "Database Layer", "Row Level Security",
-- "Database Indexes"), for the baseline server of scripts/bench. Applied after
-- sql/platform/ (roles, auth.uid()) to a database of its own, never to the product's.
-- Only what the message path touches: sessions and messages, the original service's indexes and its
-- two policies as written there (participants may do ALL on their sessions and messages).

create table public.chat_sessions (
  id uuid primary key default gen_random_uuid(),
  participants uuid [] not null,
  type text not null check (type in ('booking', 'support', 'emergency')),
  booking_id uuid,
  status text not null default 'active' check (status in ('active', 'closed')),
  title text,
  created_by uuid,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  last_message_at timestamptz
);

create table public.chat_messages (
  id uuid primary key default gen_random_uuid(),
  session_id uuid not null references public.chat_sessions (id) on delete cascade,
  sender_id uuid not null,
  type text not null default 'text'
  check (type in ('text', 'audio', 'image', 'file', 'system')),
  content text,
  reply_to_message_id uuid references public.chat_messages (id),
  metadata jsonb not null default '{}'::jsonb,
  is_read boolean not null default false,
  client_message_id text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create index idx_chat_sessions_participants on public.chat_sessions using gin (participants);
create index idx_chat_messages_session_created on public.chat_messages (
  session_id, created_at desc
);
create index idx_chat_messages_unread on public.chat_messages (session_id, is_read, sender_id);
create index idx_chat_messages_timestamps on public.chat_messages (created_at desc);

grant select, insert, update on public.chat_sessions to authenticated;
grant select, insert, update on public.chat_messages to authenticated;
grant all on public.chat_sessions, public.chat_messages to service_role;

alter table public.chat_sessions enable row level security;
alter table public.chat_messages enable row level security;

create policy "Users can only access sessions they participate in"
on public.chat_sessions for all
using (auth.uid() = any(participants));

create policy "Users can only access messages from their sessions"
on public.chat_messages for all
using (
  exists (
    select 1 from public.chat_sessions as s
    where s.id = session_id and auth.uid() = any(s.participants)
  )
);
