-- Row level security for the chat tables. Participants only; admins reach other sessions
-- only through audited admin functions (security definer, added with the admin paths).

alter table public.chat_sessions enable row level security;
alter table public.chat_messages enable row level security;
alter table public.chat_read_state enable row level security;
alter table public.chat_audit_logs enable row level security;
alter table public.chat_monitoring enable row level security;

-- ---------------------------------------------------------------- helpers
grant usage on schema chat_private to authenticated, service_role;

-- App role from app_metadata (written only with the service role); never user_metadata.
create or replace function chat_private.app_role() returns text
language sql
stable
set search_path = ''
as $$
  select case
    when (select auth.role()) = 'service_role' then 'service_role'
    else coalesce(nullif((select auth.jwt()) -> 'app_metadata' ->> 'role', ''), 'client')
  end
$$;

create or replace function chat_private.is_admin() returns boolean
language sql
stable
set search_path = ''
as $$
  select chat_private.app_role() in ('admin', 'super_admin')
$$;

-- Sessions the caller takes part in. Security definer so that policies on other tables
-- can use it without recursing into the chat_sessions policy.
create or replace function chat_private.my_session_ids() returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
  select s.id
  from public.chat_sessions as s
  where s.participants @> array[(select auth.uid())]
$$;

create or replace function chat_private.is_participant(target_session_id uuid) returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select exists (
    select 1
    from public.chat_sessions as s
    where s.id = target_session_id
      and s.participants @> array[(select auth.uid())]
  )
$$;

-- The caller may post: a participant of an active session.
create or replace function chat_private.can_post(target_session_id uuid) returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select exists (
    select 1
    from public.chat_sessions as s
    where s.id = target_session_id
      and s.status = 'active'
      and s.participants @> array[(select auth.uid())]
  )
$$;

revoke all on all functions in schema chat_private from public;
grant execute on function chat_private.app_role() to authenticated, service_role;
grant execute on function chat_private.is_admin() to authenticated, service_role;
grant execute on function chat_private.my_session_ids() to authenticated;
grant execute on function chat_private.is_participant(uuid) to authenticated;
grant execute on function chat_private.can_post(uuid) to authenticated;
grant execute on function chat_private.has_distinct_elements(uuid[]) to authenticated,
service_role;

-- ---------------------------------------------------------------- chat_sessions
create policy "Sessions are readable by their participants and their creator"
on public.chat_sessions for select
to authenticated
using (participants @> array[(select auth.uid())] or created_by = (select auth.uid()));

create policy "Users can create sessions they take part in, admins any session"
on public.chat_sessions for insert
to authenticated
with check (
  created_by = (select auth.uid())
  and (participants @> array[(select auth.uid())] or (select chat_private.is_admin()))
);

create policy "Participants can update their sessions"
on public.chat_sessions for update
to authenticated
using (participants @> array[(select auth.uid())])
with check (participants @> array[(select auth.uid())]);

-- ---------------------------------------------------------------- chat_messages
create policy "Messages are readable by session participants"
on public.chat_messages for select
to authenticated
using (session_id in (select chat_private.my_session_ids()));

create policy "Participants can post to active sessions as themselves"
on public.chat_messages for insert
to authenticated
with check (
  sender_id = (select auth.uid())
  and type <> 'system'
  and chat_private.can_post(session_id)
);

-- ---------------------------------------------------------------- chat_read_state
create policy "Read state is readable by session participants"
on public.chat_read_state for select
to authenticated
using (session_id in (select chat_private.my_session_ids()));

create policy "Participants can create their own read state"
on public.chat_read_state for insert
to authenticated
with check (
  user_id = (select auth.uid())
  and session_id in (select chat_private.my_session_ids())
);

create policy "Participants can advance their own read state"
on public.chat_read_state for update
to authenticated
using (user_id = (select auth.uid()))
with check (
  user_id = (select auth.uid())
  and session_id in (select chat_private.my_session_ids())
);

-- chat_audit_logs and chat_monitoring: no policy for anon or authenticated, so nothing is
-- visible to them; the service role bypasses RLS, admins read through security definer
-- functions that check the role and audit the read.
