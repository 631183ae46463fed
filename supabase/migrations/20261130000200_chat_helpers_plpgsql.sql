-- The RLS helpers and the participants check, as PL/pgSQL instead of SQL.
--
-- A LANGUAGE sql function with a SET clause (here search_path, as every helper must have)
-- is never inlined, and PostgreSQL 15 parses and plans its body again for every statement
-- that calls it. The policies on chat_messages call two of them per message sent
-- (can_post in WITH CHECK, my_session_ids for RETURNING), which made them the largest
-- part of a send's database time. PL/pgSQL keeps each statement's plan for the session.
-- Same signatures, same results, same volatility. The caller's id is read once into a
-- variable (a parameter of the cached plan), never once per row scanned.

create or replace function chat_private.has_distinct_elements(items uuid[]) returns boolean
language plpgsql
immutable
strict
set search_path = ''
as $$
begin
  return (select count(*) = count(distinct item) from unnest(items) as item);
end
$$;

create or replace function chat_private.app_role() returns text
language plpgsql
stable
set search_path = ''
as $$
begin
  if auth.role() = 'service_role' then
    return 'service_role';
  end if;
  return coalesce(nullif(auth.jwt() -> 'app_metadata' ->> 'role', ''), 'client');
end
$$;

create or replace function chat_private.is_admin() returns boolean
language plpgsql
stable
set search_path = ''
as $$
begin
  return chat_private.app_role() in ('admin', 'super_admin');
end
$$;

create or replace function chat_private.my_session_ids() returns setof uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  _uid uuid := auth.uid();
begin
  return query
  select s.id
  from public.chat_sessions as s
  where s.participants @> array[_uid];
end
$$;

create or replace function chat_private.is_participant(target_session_id uuid) returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  _uid uuid := auth.uid();
begin
  return exists (
    select 1
    from public.chat_sessions as s
    where s.id = target_session_id
      and s.participants @> array[_uid]
  );
end
$$;

create or replace function chat_private.can_post(target_session_id uuid) returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  _uid uuid := auth.uid();
begin
  return exists (
    select 1
    from public.chat_sessions as s
    where s.id = target_session_id
      and s.status = 'active'
      and s.participants @> array[_uid]
  );
end
$$;
