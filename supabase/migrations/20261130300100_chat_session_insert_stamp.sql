-- Sessions inserted through the API roles (supabase-js, PostgREST, the SQL functions) get
-- their id, timestamps and state from the server, as messages already do: a client cannot
-- backdate a session, pin it first in the other participant's list with a far-future
-- last_message_at, or insert it closed.

-- Is this write made through an API role? True when the session role is anon or
-- authenticated (whatever the token's claims say: a token without a role claim is still
-- an API caller), or when the claims name one of them (inside our security definer
-- functions). The table owner and service_role are trusted.
create or replace function chat_private.is_api_caller() returns boolean
language sql
stable
set search_path = ''
as $$
  select current_user in ('authenticated', 'anon')
    or coalesce(auth.role(), '') in ('authenticated', 'anon')
$$;

comment on function chat_private.is_api_caller() is
'True for writes made as anon or authenticated (by session role or by claims); false for the owner and service_role.';

create or replace function chat_private.stamp_session_insert() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if not chat_private.is_api_caller() then
    return new;
  end if;
  new.id := gen_random_uuid();
  new.created_at := now();
  new.updated_at := now();
  new.last_message_at := null;
  new.status := 'active';
  new.closed_at := null;
  return new;
end
$$;

create trigger chat_sessions_stamp_insert
before insert on public.chat_sessions
for each row execute function chat_private.stamp_session_insert();

revoke all on function chat_private.is_api_caller() from public;
revoke all on function chat_private.stamp_session_insert() from public;
grant execute on function chat_private.is_api_caller() to authenticated, service_role;
