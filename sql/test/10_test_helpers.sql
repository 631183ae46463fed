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

-- Named test users (the basejump helpers' create_supabase_user('client') style): a test
-- creates a user under a name and then refers to it by that name, never by a bare uuid.
-- A named user gets a new uuid from a sequence, so within a test the users sort by
-- creation order (results in user-id order do not depend on chance).
create table if not exists tests.named_users (
  identifier text primary key,
  user_id uuid not null unique
);
create sequence if not exists tests.named_user_ids;

-- Whether the identifier is a uuid rather than a name (the text overloads take both, so a
-- call with a quoted uuid literal, which resolves to them, still means that uuid).
create or replace function tests.is_uuid(identifier text) returns boolean
language sql
immutable
set search_path = ''
as $$
  select identifier ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
$$;

create or replace function tests.create_supabase_user(
  identifier text,
  email text default null,
  app_metadata jsonb default '{}'::jsonb,
  user_metadata jsonb default '{}'::jsonb
) returns uuid
language plpgsql
set search_path = ''
as $$
declare
  _id uuid;
begin
  if tests.is_uuid(identifier) then
    return tests.create_supabase_user(identifier::uuid, email, app_metadata, user_metadata);
  end if;
  select n.user_id into _id from tests.named_users as n where n.identifier = $1;
  if _id is null then
    _id := (
      '00000000-0000-4000-8000-' || lpad(to_hex(nextval('tests.named_user_ids')), 12, '0')
    )::uuid;
    insert into tests.named_users (identifier, user_id) values ($1, _id);
  end if;
  return tests.create_supabase_user(
    _id, coalesce(email, identifier || '@example.test'), app_metadata, user_metadata
  );
end
$$;

-- The uuid of the user created under this name; an error for a name no user has.
create or replace function tests.get_supabase_uid(identifier text) returns uuid
language plpgsql
stable
set search_path = ''
as $$
declare
  _id uuid;
begin
  select n.user_id into _id from tests.named_users as n where n.identifier = $1;
  if _id is null then
    raise exception 'tests.get_supabase_uid: no test user named %', identifier
      using hint = 'Create it first with tests.create_supabase_user(name, ...).';
  end if;
  return _id;
end
$$;

-- Short for tests.get_supabase_uid, for use inline.
create or replace function tests.uid(identifier text) returns uuid
language sql
stable
set search_path = ''
as $$
  select tests.get_supabase_uid(identifier)
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

-- Impersonate a named user (or, given a uuid, that user).
create or replace function tests.authenticate_as(identifier text) returns void
language plpgsql
set search_path = ''
as $$
begin
  if tests.is_uuid(identifier) then
    perform tests.authenticate_as(identifier::uuid);
  else
    perform tests.authenticate_as(tests.get_supabase_uid(identifier));
  end if;
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

-- The chat fixture most policy and function tests start from (as the runner's role):
-- named users client and reader, who share an active session S1
-- (5e000000-0000-4000-8000-000000000001, a booking) and a closed one S2 (...0002, support);
-- outsider and other_reader in a session of their own S3 (...0003, a booking); admin
-- (app_metadata role admin), in neither; forger, whose user_metadata (which a user may
-- edit) claims admin. Four messages (3e000000-...-000000000001 to ...0004): client and
-- reader in S1, client in S2 before it closed, outsider in S3.
create or replace function tests.create_chat_fixture() returns void
language plpgsql
set search_path = ''
as $fixture$
begin
  perform tests.create_supabase_user('client', 'client@chat.test', '{"role": "client"}');
  perform tests.create_supabase_user('reader', 'reader@chat.test', '{"role": "reader"}');
  perform tests.create_supabase_user('outsider', 'outsider@chat.test', '{"role": "client"}');
  perform tests.create_supabase_user('admin', 'admin@chat.test', '{"role": "admin"}');
  perform tests.create_supabase_user('forger', 'forger@chat.test', '{"role": "client"}', '{"role": "admin"}');
  perform tests.create_supabase_user('other_reader', 'other-reader@chat.test', '{"role": "reader"}');

  insert into public.chat_sessions (id, participants, type, booking_id, title, created_by, status, closed_at)
  values
  ('5e000000-0000-4000-8000-000000000001',
   array[tests.uid('client'), tests.uid('reader')]::uuid [],
   'booking', 'b0000000-0000-4000-8000-000000000001', 'Active consultation',
   tests.uid('client'), 'active', null),
  ('5e000000-0000-4000-8000-000000000002',
   array[tests.uid('client'), tests.uid('reader')]::uuid [],
   'support', null, 'Closed support chat',
   tests.uid('client'), 'closed', now() - interval '1 hour'),
  ('5e000000-0000-4000-8000-000000000003',
   array[tests.uid('outsider'), tests.uid('other_reader')]::uuid [],
   'booking', 'b0000000-0000-4000-8000-000000000003', 'Outsider consultation',
   tests.uid('outsider'), 'active', null);

  insert into public.chat_messages (id, session_id, sender_id, content, created_at)
  values
  ('3e000000-0000-4000-8000-000000000001', '5e000000-0000-4000-8000-000000000001',
   tests.uid('client'), 'Hello from the client', now() - interval '3 minutes'),
  ('3e000000-0000-4000-8000-000000000002', '5e000000-0000-4000-8000-000000000001',
   tests.uid('reader'), 'Hello from the reader', now() - interval '2 minutes'),
  ('3e000000-0000-4000-8000-000000000003', '5e000000-0000-4000-8000-000000000002',
   tests.uid('client'), 'Said before closing', now() - interval '2 hours'),
  ('3e000000-0000-4000-8000-000000000004', '5e000000-0000-4000-8000-000000000003',
   tests.uid('outsider'), 'Hello from the outsider', now() - interval '1 minute');
end
$fixture$;

-- pg_temp.affected_rows(query): the rows a statement affected as the current role (RLS
-- filters silently). In pg_temp, which every role can call, unlike schema tests.
create or replace function tests.create_affected_rows() returns void
language plpgsql
set search_path = ''
as $helper$
begin
  execute $body$
create or replace function pg_temp.affected_rows(query text) returns integer
language plpgsql
as $$
declare
  _n integer;
begin
  execute query;
  get diagnostics _n = row_count;
  return _n;
end
$$;
  $body$;
end
$helper$;

-- pg_temp.scans_during(query, rel): how many scans a statement, run as the current role,
-- starts on a relation: sequential scans for a table, index scans for an index (this
-- transaction's statistics counters). In pg_temp, like affected_rows.
create or replace function tests.create_scans_during() returns void
language plpgsql
set search_path = ''
as $helper$
begin
  execute $body$
create or replace function pg_temp.scans_during(query text, rel regclass) returns bigint
language plpgsql
as $$
declare
  _before bigint := pg_stat_get_xact_numscans(rel);
begin
  execute query;
  return pg_stat_get_xact_numscans(rel) - _before;
end
$$;
  $body$;
end
$helper$;

revoke all on all functions in schema tests from public, anon, authenticated, service_role;
revoke all on all tables in schema tests from public, anon, authenticated, service_role;
revoke all on all sequences in schema tests from public, anon, authenticated, service_role;
