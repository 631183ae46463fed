-- chat_audit_logs and chat_monitoring: service-only tables; audit rows are append-only.
begin;
set local search_path = extensions, public;
select plan(57);

-- Fixtures (as postgres): a client and a reader who share an active session (S1) and a
-- closed one (S2); an outsider in a session of their own (S3); an admin (app_metadata) who
-- takes part in neither; a user whose user_metadata (editable by the user) claims admin.
do $$
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
$$;

-- Their ids as psql variables (:'client'), for statements run under another role.
select
  tests.uid('client') as client,
  tests.uid('admin') as admin
\gset

-- Rows affected by a statement run as the current role (RLS filters silently).
create function pg_temp.affected_rows(query text) returns integer
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

-- One audit row and one monitoring event, written as the service would.
insert into public.chat_audit_logs (actor_id, actor_role, action, session_id, details)
values (
  :'admin', 'admin', 'session.read',
  '5e000000-0000-4000-8000-000000000001', '{"reason": "dispute"}'
);
insert into public.chat_monitoring (event_type, user_id, session_id)
values ('connect', :'client', '5e000000-0000-4000-8000-000000000001');

-- ---------------------------------------------------------------- anon
reset role;
select tests.clear_authentication();
select throws_ok(
  $$ select * from public.chat_audit_logs $$,
  '42501', 'permission denied for table chat_audit_logs',
  'An anonymous caller cannot read audit rows.'
);
select throws_ok(
  $$ insert into public.chat_audit_logs (actor_role, action) values ('client', 'forged.entry') $$,
  '42501', 'permission denied for table chat_audit_logs',
  'An anonymous caller cannot write audit rows.'
);
select throws_ok(
  $$ update public.chat_audit_logs set details = '{}' $$,
  '42501', 'permission denied for table chat_audit_logs',
  'An anonymous caller cannot update audit rows.'
);
select throws_ok(
  $$ delete from public.chat_audit_logs $$,
  '42501', 'permission denied for table chat_audit_logs',
  'An anonymous caller cannot delete audit rows.'
);
select throws_ok(
  $$ select * from public.chat_monitoring $$,
  '42501', 'permission denied for table chat_monitoring',
  'An anonymous caller cannot read monitoring events.'
);
select throws_ok(
  $$ insert into public.chat_monitoring (event_type) values ('forged') $$,
  '42501', 'permission denied for table chat_monitoring',
  'An anonymous caller cannot write monitoring events.'
);
select throws_ok(
  $$ update public.chat_monitoring set details = '{}' $$,
  '42501', 'permission denied for table chat_monitoring',
  'An anonymous caller cannot update monitoring events.'
);
select throws_ok(
  $$ delete from public.chat_monitoring $$,
  '42501', 'permission denied for table chat_monitoring',
  'An anonymous caller cannot delete monitoring events.'
);
-- ---------------------------------------------------------------- client participant
reset role;
select tests.authenticate_as('client');
select throws_ok(
  $$ select * from public.chat_audit_logs $$,
  '42501', 'permission denied for table chat_audit_logs',
  'The client participant cannot read audit rows.'
);
select throws_ok(
  $$ insert into public.chat_audit_logs (actor_role, action) values ('client', 'forged.entry') $$,
  '42501', 'permission denied for table chat_audit_logs',
  'The client participant cannot write audit rows.'
);
select throws_ok(
  $$ update public.chat_audit_logs set details = '{}' $$,
  '42501', 'permission denied for table chat_audit_logs',
  'The client participant cannot update audit rows.'
);
select throws_ok(
  $$ delete from public.chat_audit_logs $$,
  '42501', 'permission denied for table chat_audit_logs',
  'The client participant cannot delete audit rows.'
);
select throws_ok(
  $$ select * from public.chat_monitoring $$,
  '42501', 'permission denied for table chat_monitoring',
  'The client participant cannot read monitoring events.'
);
select throws_ok(
  $$ insert into public.chat_monitoring (event_type) values ('forged') $$,
  '42501', 'permission denied for table chat_monitoring',
  'The client participant cannot write monitoring events.'
);
select throws_ok(
  $$ update public.chat_monitoring set details = '{}' $$,
  '42501', 'permission denied for table chat_monitoring',
  'The client participant cannot update monitoring events.'
);
select throws_ok(
  $$ delete from public.chat_monitoring $$,
  '42501', 'permission denied for table chat_monitoring',
  'The client participant cannot delete monitoring events.'
);
-- ---------------------------------------------------------------- reader participant
reset role;
select tests.authenticate_as('reader');
select throws_ok(
  $$ select * from public.chat_audit_logs $$,
  '42501', 'permission denied for table chat_audit_logs',
  'The reader participant cannot read audit rows.'
);
select throws_ok(
  $$ insert into public.chat_audit_logs (actor_role, action) values ('client', 'forged.entry') $$,
  '42501', 'permission denied for table chat_audit_logs',
  'The reader participant cannot write audit rows.'
);
select throws_ok(
  $$ update public.chat_audit_logs set details = '{}' $$,
  '42501', 'permission denied for table chat_audit_logs',
  'The reader participant cannot update audit rows.'
);
select throws_ok(
  $$ delete from public.chat_audit_logs $$,
  '42501', 'permission denied for table chat_audit_logs',
  'The reader participant cannot delete audit rows.'
);
select throws_ok(
  $$ select * from public.chat_monitoring $$,
  '42501', 'permission denied for table chat_monitoring',
  'The reader participant cannot read monitoring events.'
);
select throws_ok(
  $$ insert into public.chat_monitoring (event_type) values ('forged') $$,
  '42501', 'permission denied for table chat_monitoring',
  'The reader participant cannot write monitoring events.'
);
select throws_ok(
  $$ update public.chat_monitoring set details = '{}' $$,
  '42501', 'permission denied for table chat_monitoring',
  'The reader participant cannot update monitoring events.'
);
select throws_ok(
  $$ delete from public.chat_monitoring $$,
  '42501', 'permission denied for table chat_monitoring',
  'The reader participant cannot delete monitoring events.'
);
-- ---------------------------------------------------------------- outsider
reset role;
select tests.authenticate_as('outsider');
select throws_ok(
  $$ select * from public.chat_audit_logs $$,
  '42501', 'permission denied for table chat_audit_logs',
  'The outsider cannot read audit rows.'
);
select throws_ok(
  $$ insert into public.chat_audit_logs (actor_role, action) values ('client', 'forged.entry') $$,
  '42501', 'permission denied for table chat_audit_logs',
  'The outsider cannot write audit rows.'
);
select throws_ok(
  $$ update public.chat_audit_logs set details = '{}' $$,
  '42501', 'permission denied for table chat_audit_logs',
  'The outsider cannot update audit rows.'
);
select throws_ok(
  $$ delete from public.chat_audit_logs $$,
  '42501', 'permission denied for table chat_audit_logs',
  'The outsider cannot delete audit rows.'
);
select throws_ok(
  $$ select * from public.chat_monitoring $$,
  '42501', 'permission denied for table chat_monitoring',
  'The outsider cannot read monitoring events.'
);
select throws_ok(
  $$ insert into public.chat_monitoring (event_type) values ('forged') $$,
  '42501', 'permission denied for table chat_monitoring',
  'The outsider cannot write monitoring events.'
);
select throws_ok(
  $$ update public.chat_monitoring set details = '{}' $$,
  '42501', 'permission denied for table chat_monitoring',
  'The outsider cannot update monitoring events.'
);
select throws_ok(
  $$ delete from public.chat_monitoring $$,
  '42501', 'permission denied for table chat_monitoring',
  'The outsider cannot delete monitoring events.'
);
-- ---------------------------------------------------------------- admin (not a participant)
reset role;
select tests.authenticate_as('admin');
select throws_ok(
  $$ select * from public.chat_audit_logs $$,
  '42501', 'permission denied for table chat_audit_logs',
  'The admin cannot read audit rows.'
);
select throws_ok(
  $$ insert into public.chat_audit_logs (actor_role, action) values ('client', 'forged.entry') $$,
  '42501', 'permission denied for table chat_audit_logs',
  'The admin cannot write audit rows.'
);
select throws_ok(
  $$ update public.chat_audit_logs set details = '{}' $$,
  '42501', 'permission denied for table chat_audit_logs',
  'The admin cannot update audit rows.'
);
select throws_ok(
  $$ delete from public.chat_audit_logs $$,
  '42501', 'permission denied for table chat_audit_logs',
  'The admin cannot delete audit rows.'
);
select throws_ok(
  $$ select * from public.chat_monitoring $$,
  '42501', 'permission denied for table chat_monitoring',
  'The admin cannot read monitoring events.'
);
select throws_ok(
  $$ insert into public.chat_monitoring (event_type) values ('forged') $$,
  '42501', 'permission denied for table chat_monitoring',
  'The admin cannot write monitoring events.'
);
select throws_ok(
  $$ update public.chat_monitoring set details = '{}' $$,
  '42501', 'permission denied for table chat_monitoring',
  'The admin cannot update monitoring events.'
);
select throws_ok(
  $$ delete from public.chat_monitoring $$,
  '42501', 'permission denied for table chat_monitoring',
  'The admin cannot delete monitoring events.'
);

-- ---------------------------------------------------------------- forged admin claim
reset role;
select tests.authenticate_as('forger');
select throws_ok(
  $$ select * from public.chat_audit_logs $$,
  '42501', 'permission denied for table chat_audit_logs',
  'A user whose user_metadata says admin cannot read audit rows.'
);
select throws_ok(
  $$ select * from public.chat_monitoring $$,
  '42501', 'permission denied for table chat_monitoring',
  'A user whose user_metadata says admin cannot read monitoring events.'
);

-- ---------------------------------------------------------------- service role: audit
reset role;
select tests.authenticate_as_service_role();
select results_eq(
  $$ select actor_role, action from public.chat_audit_logs where session_id = '5e000000-0000-4000-8000-000000000001' and action in ('session.read', 'session.export') $$,
  $$ values ('admin'::text, 'session.read'::text) $$,
  'The service role reads audit rows.'
);
select lives_ok(
  $$ insert into public.chat_audit_logs (actor_role, action, session_id)
     values ('service_role', 'session.export', '5e000000-0000-4000-8000-000000000001') $$,
  'The service role appends audit rows.'
);
select throws_ok(
  $$ update public.chat_audit_logs set details = '{}' $$,
  '42501', 'permission denied for table chat_audit_logs',
  'The service role cannot update audit rows (no privilege).'
);
select throws_ok(
  $$ delete from public.chat_audit_logs $$,
  '42501', 'permission denied for table chat_audit_logs',
  'The service role cannot delete audit rows (no privilege).'
);
select throws_ok(
  $$ truncate public.chat_audit_logs $$,
  '42501', 'permission denied for table chat_audit_logs',
  'The service role cannot truncate the audit log (no privilege).'
);

-- Should a later migration grant more, the append-only trigger still refuses.
reset role;
select set_config('request.jwt.claims', '', true);
grant update, delete on public.chat_audit_logs to service_role;
reset role;
select tests.authenticate_as_service_role();
select throws_ok(
  $$ update public.chat_audit_logs set details = '{}' $$,
  '42501', 'chat_audit_logs is append-only: UPDATE is not allowed',
  'The service role cannot update audit rows even when granted UPDATE.'
);
select throws_ok(
  $$ delete from public.chat_audit_logs $$,
  '42501', 'chat_audit_logs is append-only: DELETE is not allowed',
  'The service role cannot delete audit rows even when granted DELETE.'
);

-- ---------------------------------------------------------------- postgres (table owner)
reset role;
select set_config('request.jwt.claims', '', true);
select throws_ok(
  $$ update public.chat_audit_logs set action = 'tampered' $$,
  '42501', 'chat_audit_logs is append-only: UPDATE is not allowed',
  'The table owner cannot update audit rows.'
);
select throws_ok(
  $$ delete from public.chat_audit_logs $$,
  '42501', 'chat_audit_logs is append-only: DELETE is not allowed',
  'The table owner cannot delete audit rows.'
);
select throws_ok(
  $$ truncate public.chat_audit_logs $$,
  '42501', 'chat_audit_logs is append-only: TRUNCATE is not allowed',
  'The table owner cannot truncate the audit log.'
);
select results_eq(
  $$ select action, details from public.chat_audit_logs where session_id = '5e000000-0000-4000-8000-000000000001' and action in ('session.read', 'session.export') order by id $$,
  $$ values ('session.read'::text, '{"reason": "dispute"}'::jsonb), ('session.export'::text, '{}'::jsonb) $$,
  'The audit rows are exactly as written after every attempt to change them.'
);

-- ---------------------------------------------------------------- service role: monitoring
reset role;
select tests.authenticate_as_service_role();
select results_eq(
  $$ select event_type from public.chat_monitoring where session_id = '5e000000-0000-4000-8000-000000000001' $$,
  $$ values ('connect'::text) $$,
  'The service role reads monitoring events.'
);
select lives_ok(
  format($$ insert into public.chat_monitoring (event_type, user_id, session_id, details)
     select 'disconnect', %L, '5e000000-0000-4000-8000-000000000001', '{"reason": "timeout"}'
     from generate_series(1, 3) $$, :'client'),
  'The service role writes monitoring events in batches.'
);
select throws_ok(
  $$ update public.chat_monitoring set details = '{}' $$,
  '42501', 'permission denied for table chat_monitoring',
  'The service role cannot update monitoring events.'
);
select is(
  pg_temp.affected_rows($$ delete from public.chat_monitoring where session_id = '5e000000-0000-4000-8000-000000000001' $$),
  4,
  'The service role can delete monitoring events (retention).'
);

select * from finish();
rollback;
