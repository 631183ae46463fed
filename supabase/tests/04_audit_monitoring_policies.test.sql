-- chat_audit_logs and chat_monitoring: service-only tables; audit rows are append-only.
begin;
set local search_path = extensions, public;
select plan(57);

-- Fixtures: the chat fixture of the test helpers (tests.create_chat_fixture).
select tests.create_chat_fixture();

-- Their ids as psql variables (:'client'), for statements run under another role.
select
  tests.uid('client') as client,
  tests.uid('admin') as admin
\gset

select tests.create_affected_rows();

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
