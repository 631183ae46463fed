-- Sessions one user may create per hour, whatever the path (the REST API, supabase-js
-- straight to PostgREST, the SQL function): at most chat.session_create_limit (a database
-- setting, `alter database ... set chat.session_create_limit = N`; default 100). Beyond,
-- SQLSTATE PT429, which PostgREST answers with HTTP 429 and the service maps to 429
-- rate_limited. The service's own per-user bucket (SESSION_CREATE_RATE) refuses sooner.

-- The count reads only the caller's sessions of the last hour.
create index chat_sessions_created_by_created_at
on public.chat_sessions (created_by, created_at desc);

create or replace function chat_private.limit_session_creation() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  _limit integer := coalesce(
    nullif(current_setting('chat.session_create_limit', true), '')::integer, 100
  );
  _recent integer;
begin
  if not chat_private.is_api_caller() or _limit <= 0 then
    return new;
  end if;
  select count(*) into _recent
  from (
    select 1 from public.chat_sessions as s
    where s.created_by = (select auth.uid())
      and s.created_at > now() - interval '1 hour'
    limit _limit
  ) as recent;
  if _recent >= _limit then
    raise exception 'too many sessions created in the last hour (at most %)', _limit
      using errcode = 'PT429';
  end if;
  return new;
end
$$;

create trigger chat_sessions_limit_creation
before insert on public.chat_sessions
for each row execute function chat_private.limit_session_creation();

revoke all on function chat_private.limit_session_creation() from public;
