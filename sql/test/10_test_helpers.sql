-- Test helpers in schema tests (the basejump supabase-test-helpers pattern), for pgTAP.
-- Each impersonates exactly as PostgREST does: transaction-local role and claims.
--
-- Installed by scripts/test in its throwaway test database only (never by scripts/dev,
-- whose platform stand-in drops this schema), owned by and executable only by the test
-- runner's role (the one pg_prove connects as): never by anon, authenticated or
-- service_role. A test impersonating a user goes back to the runner's role with
-- `reset role` before calling a helper again. Every function has a fixed search_path.

create schema if not exists tests;
revoke all on schema tests from public, anon, authenticated, service_role;

create or replace function tests.create_supabase_user(
  user_id uuid,
  email text default null,
  app_metadata jsonb default '{}'::jsonb,
  user_metadata jsonb default '{}'::jsonb
) returns uuid
language sql
set search_path = ''
as $$
  insert into auth.users (id, email, raw_app_meta_data, raw_user_meta_data)
  values (
    user_id,
    coalesce(email, user_id::text || '@example.test'),
    coalesce(app_metadata, '{}'::jsonb),
    coalesce(user_metadata, '{}'::jsonb)
  )
  on conflict (id) do update
    set email = excluded.email,
        raw_app_meta_data = excluded.raw_app_meta_data,
        raw_user_meta_data = excluded.raw_user_meta_data
  returning id
$$;

-- The claims Supabase Auth would put in this user's access token.
create or replace function tests.user_claims(user_id uuid) returns jsonb
language sql
stable
set search_path = ''
as $$
  select jsonb_build_object(
    'sub', u.id,
    'role', 'authenticated',
    'aud', 'authenticated',
    'email', u.email,
    'app_metadata', coalesce(u.raw_app_meta_data, '{}'::jsonb),
    'user_metadata', coalesce(u.raw_user_meta_data, '{}'::jsonb),
    'exp', extract(epoch from now() + interval '1 hour')::bigint
  )
  from auth.users as u
  where u.id = user_id
$$;

create or replace function tests.authenticate_as(user_id uuid) returns void
language plpgsql
set search_path = ''
as $$
declare
  _claims jsonb := tests.user_claims(user_id);
begin
  if _claims is null then
    raise exception 'tests.authenticate_as: no user %', user_id;
  end if;
  perform set_config('role', 'authenticated', true);
  perform set_config('request.jwt.claims', _claims::text, true);
end
$$;

-- Impersonate with arbitrary claims (a forged user_metadata role, a missing sub, ...).
create or replace function tests.authenticate_with_claims(claims jsonb) returns void
language plpgsql
set search_path = ''
as $$
begin
  perform set_config('role', 'authenticated', true);
  perform set_config('request.jwt.claims', claims::text, true);
end
$$;

create or replace function tests.authenticate_as_service_role() returns void
language plpgsql
set search_path = ''
as $$
begin
  perform set_config('role', 'service_role', true);
  perform set_config('request.jwt.claims', '{"role": "service_role"}', true);
end
$$;

create or replace function tests.clear_authentication() returns void
language plpgsql
set search_path = ''
as $$
begin
  perform set_config('role', 'anon', true);
  perform set_config('request.jwt.claims', '{"role": "anon"}', true);
end
$$;

-- Names of tables in the schema without row level security (empty when all have it).
create or replace function tests.tables_without_rls(schema_name text) returns text[]
language sql
stable
set search_path = ''
as $$
  select coalesce(array_agg(c.relname::text order by c.relname), '{}')
  from pg_catalog.pg_class as c
  inner join pg_catalog.pg_namespace as n on c.relnamespace = n.oid
  where n.nspname = schema_name
    and c.relkind in ('r', 'p')
    and not c.relrowsecurity
$$;

create or replace function tests.rls_enabled(schema_name text) returns text
language plpgsql
set search_path = extensions, pg_catalog
as $$
begin
  return extensions.is(
    tests.tables_without_rls(schema_name),
    '{}'::text [],
    format('Every table in schema %s has row level security enabled', schema_name)
  );
end
$$;

revoke all on all functions in schema tests from public, anon, authenticated, service_role;
