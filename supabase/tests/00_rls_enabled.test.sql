-- Row level security is on everywhere, and each API role holds exactly the privileges
-- the migrations grant: nothing is left to the hosted default privileges.
begin;
set local search_path = extensions, public;
select plan(48);

-- ---------------------------------------------------------------- row level security
select tests.rls_enabled('public');
select tests.rls_enabled('storage');
select is(
  (
    select array_agg(c.relname::text order by c.relname)
    from pg_catalog.pg_class as c
    where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
  ),
  array[
    'chat_audit_logs', 'chat_delivery_state', 'chat_messages', 'chat_monitoring', 'chat_read_state',
    'chat_sessions'
  ],
  'The public schema holds exactly the six chat tables, so the RLS check above covers them all.'
);

-- ---------------------------------------------------------------- schema chat_private
select schema_privs_are(
  'chat_private', 'anon', '{}'::text[],
  'The anon role has no privilege on schema chat_private.'
);
select schema_privs_are(
  'chat_private', 'public', '{}'::text[],
  'PUBLIC has no privilege on schema chat_private.'
);
select schema_privs_are(
  'chat_private', 'authenticated', array['USAGE'],
  'The authenticated role may only use schema chat_private (policies call its helpers).'
);
select is(
  (
    select coalesce(array_agg(p.oid::regprocedure::text order by 1), '{}')
    from pg_catalog.pg_proc as p
    where p.pronamespace = 'chat_private'::regnamespace
      and has_function_privilege('anon', p.oid, 'EXECUTE')
  ),
  '{}'::text[],
  'The anon role cannot execute any function of schema chat_private.'
);
select is(
  (
    select coalesce(array_agg(p.oid::regprocedure::text order by 1), '{}')
    from pg_catalog.pg_proc as p
    where p.pronamespace = 'chat_private'::regnamespace
      and p.prorettype = 'trigger'::regtype
      and (
        has_function_privilege('authenticated', p.oid, 'EXECUTE')
        or has_function_privilege('service_role', p.oid, 'EXECUTE')
      )
  ),
  '{}'::text[],
  'No API role can call a chat_private trigger function directly.'
);

-- ---------------------------------------------------------------- table privileges
select table_privs_are(
  'public', 'chat_sessions', 'anon', '{}'::text[],
  'The anon role has no privilege on chat_sessions.'
);
select table_privs_are(
  'public', 'chat_messages', 'anon', '{}'::text[],
  'The anon role has no privilege on chat_messages.'
);
select table_privs_are(
  'public', 'chat_read_state', 'anon', '{}'::text[],
  'The anon role has no privilege on chat_read_state.'
);
select table_privs_are(
  'public', 'chat_audit_logs', 'anon', '{}'::text[],
  'The anon role has no privilege on chat_audit_logs.'
);
select table_privs_are(
  'public', 'chat_monitoring', 'anon', '{}'::text[],
  'The anon role has no privilege on chat_monitoring.'
);

select table_privs_are(
  'public', 'chat_sessions', 'authenticated', array['SELECT', 'INSERT'],
  'The authenticated role may select and insert sessions (updates are per column).'
);
select table_privs_are(
  'public', 'chat_messages', 'authenticated', array['SELECT', 'INSERT'],
  'The authenticated role may select and insert messages, never update or delete them.'
);
select table_privs_are(
  'public', 'chat_read_state', 'authenticated', array['SELECT', 'INSERT'],
  'The authenticated role may select and insert read state (updates are per column).'
);
select table_privs_are(
  'public', 'chat_audit_logs', 'authenticated', '{}'::text[],
  'The authenticated role has no privilege on chat_audit_logs.'
);
select table_privs_are(
  'public', 'chat_monitoring', 'authenticated', '{}'::text[],
  'The authenticated role has no privilege on chat_monitoring.'
);

select table_privs_are(
  'public', 'chat_sessions', 'service_role',
  array['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  'The service role may select, insert, update and delete sessions.'
);
select table_privs_are(
  'public', 'chat_messages', 'service_role',
  array['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  'The service role may select, insert, update and delete messages.'
);
select table_privs_are(
  'public', 'chat_read_state', 'service_role',
  array['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  'The service role may select, insert, update and delete read state.'
);
select table_privs_are(
  'public', 'chat_audit_logs', 'service_role', array['SELECT', 'INSERT'],
  'The service role may only select and insert audit rows.'
);
select table_privs_are(
  'public', 'chat_monitoring', 'service_role',
  array['SELECT', 'INSERT', 'DELETE'],
  'The service role may select, insert and delete monitoring events, never update them.'
);

-- ---------------------------------------------------------------- column privileges
select is(
  (
    select array_agg(a.attname::text order by a.attname)
    from pg_catalog.pg_attribute as a
    where a.attrelid = 'public.chat_sessions'::regclass and a.attnum > 0 and not a.attisdropped
      and has_column_privilege('authenticated', a.attrelid, a.attnum, 'UPDATE')
  ),
  array['status', 'title'],
  'The authenticated role may update only the title and status of a session.'
);
select is(
  (
    select array_agg(a.attname::text order by a.attname)
    from pg_catalog.pg_attribute as a
    where a.attrelid = 'public.chat_read_state'::regclass and a.attnum > 0 and not a.attisdropped
      and has_column_privilege('authenticated', a.attrelid, a.attnum, 'UPDATE')
  ),
  array['last_read_at', 'last_read_message_id', 'last_read_seq', 'updated_at'],
  'The authenticated role may update only the cursor columns of its read state.'
);
select is(
  (
    select coalesce(array_agg(a.attname::text order by a.attname), '{}')
    from pg_catalog.pg_attribute as a
    where a.attrelid = 'public.chat_messages'::regclass and a.attnum > 0 and not a.attisdropped
      and has_column_privilege('authenticated', a.attrelid, a.attnum, 'UPDATE')
  ),
  '{}'::text[],
  'The authenticated role may update no column of a message.'
);

-- ---------------------------------------------------------------- sequences
-- Identity columns need no sequence privilege to insert; the API roles need none at all.
-- (Asserted through the catalog only: a successful setval() would not be rolled back.)
select is(
  (
    select coalesce(array_agg(format('%s:%s', c.relname, p.priv) order by 1), '{}')
    from pg_catalog.pg_class as c
    cross join unnest(array['USAGE', 'SELECT', 'UPDATE']) as p (priv)
    where c.relnamespace = 'public'::regnamespace and c.relkind = 'S'
      and has_sequence_privilege('anon', c.oid, p.priv)
  ),
  '{}'::text[],
  'The anon role holds no privilege on any sequence of schema public.'
);
select is(
  (
    select coalesce(array_agg(format('%s:%s', c.relname, p.priv) order by 1), '{}')
    from pg_catalog.pg_class as c
    cross join unnest(array['USAGE', 'SELECT', 'UPDATE']) as p (priv)
    where c.relnamespace = 'public'::regnamespace and c.relkind = 'S'
      and has_sequence_privilege('authenticated', c.oid, p.priv)
  ),
  '{}'::text[],
  'The authenticated role holds no privilege on any sequence of schema public (no setval).'
);

-- ---------------------------------------------------------------- API functions
select function_privs_are(
  'public', 'create_chat_session', array['uuid[]', 'text', 'uuid', 'text'],
  'anon', '{}'::text[], 'The anon role cannot execute create_chat_session.'
);
select function_privs_are(
  'public', 'send_chat_message',
  array['uuid', 'text', 'text', 'uuid', 'jsonb', 'text'],
  'anon', '{}'::text[], 'The anon role cannot execute send_chat_message.'
);
select function_privs_are(
  'public', 'mark_chat_messages_read', array['uuid', 'uuid'],
  'anon', '{}'::text[], 'The anon role cannot execute mark_chat_messages_read.'
);
select function_privs_are(
  'public', 'list_my_chat_sessions', array['integer', 'integer'],
  'anon', '{}'::text[], 'The anon role cannot execute list_my_chat_sessions.'
);
select function_privs_are(
  'public', 'get_chat_messages',
  array['uuid', 'integer', 'integer', 'timestamp with time zone', 'uuid'],
  'anon', '{}'::text[], 'The anon role cannot execute get_chat_messages.'
);
select function_privs_are(
  'public', 'close_chat_session', array['uuid'],
  'anon', '{}'::text[], 'The anon role cannot execute close_chat_session.'
);

select function_privs_are(
  'public', 'create_chat_session', array['uuid[]', 'text', 'uuid', 'text'],
  'authenticated', array['EXECUTE'], 'The authenticated role can execute create_chat_session.'
);
select function_privs_are(
  'public', 'send_chat_message',
  array['uuid', 'text', 'text', 'uuid', 'jsonb', 'text'],
  'authenticated', array['EXECUTE'], 'The authenticated role can execute send_chat_message.'
);
select function_privs_are(
  'public', 'mark_chat_messages_read', array['uuid', 'uuid'],
  'authenticated', array['EXECUTE'], 'The authenticated role can execute mark_chat_messages_read.'
);
select function_privs_are(
  'public', 'list_my_chat_sessions', array['integer', 'integer'],
  'authenticated', array['EXECUTE'], 'The authenticated role can execute list_my_chat_sessions.'
);
select function_privs_are(
  'public', 'get_chat_messages',
  array['uuid', 'integer', 'integer', 'timestamp with time zone', 'uuid'],
  'authenticated', array['EXECUTE'], 'The authenticated role can execute get_chat_messages.'
);
select function_privs_are(
  'public', 'close_chat_session', array['uuid'],
  'authenticated', array['EXECUTE'], 'The authenticated role can execute close_chat_session.'
);

select function_privs_are(
  'public', 'chat_user_names', array['uuid[]'],
  'anon', '{}'::text[], 'The anon role cannot execute chat_user_names.'
);
select function_privs_are(
  'public', 'chat_user_names', array['uuid[]'],
  'authenticated', array['EXECUTE'], 'The authenticated role can execute chat_user_names.'
);

-- Business rules run as the caller, under RLS. The one exception reads auth.users, which
-- the API roles cannot, and filters by itself (13_functions_user_names).
select is(
  (
    select coalesce(array_agg(p.oid::regprocedure::text order by 1), '{}')
    from pg_catalog.pg_proc as p
    where p.pronamespace = 'public'::regnamespace and p.prosecdef
  ),
  array['chat_user_names(uuid[])'],
  'Every API function in schema public is security invoker, except chat_user_names.'
);
select is(
  (
    select coalesce(array_agg(p.oid::regprocedure::text order by 1), '{}')
    from pg_catalog.pg_proc as p
    where p.pronamespace in ('public'::regnamespace, 'chat_private'::regnamespace) and p.prosecdef
      and (p.proconfig is null or not ('search_path=""' = any(p.proconfig)))
  ),
  '{}'::text[],
  'Every security definer function pins an empty search_path.'
);

-- ---------------------------------------------------------------- policies
select policies_are(
  'public', 'chat_audit_logs', '{}'::name[],
  'chat_audit_logs has no policy: anon and authenticated can see nothing in it.'
);
select policies_are(
  'public', 'chat_monitoring', '{}'::name[],
  'chat_monitoring has no policy: anon and authenticated can see nothing in it.'
);
select is(
  (
    select coalesce(array_agg(format('%s.%s', p.tablename, p.policyname) order by 1), '{}')
    from pg_catalog.pg_policies as p
    where p.schemaname = 'public' and p.roles <> array['authenticated']::name[]
  ),
  '{}'::text[],
  'Every chat policy applies to the authenticated role only (never anon or public).'
);

-- Calling through the API as anon fails on privileges before any rule runs.
reset role;
select tests.clear_authentication();
select throws_ok(
  $$ select public.create_chat_session(array['0c000000-0000-4000-8000-000000000001']::uuid []) $$,
  '42501',
  'permission denied for function create_chat_session',
  'An anonymous caller cannot create a session.'
);

select * from finish();
rollback;
