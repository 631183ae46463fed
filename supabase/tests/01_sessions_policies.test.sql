-- chat_sessions: what each actor may select, insert, update and delete.
begin;
set local search_path = extensions, public;
select plan(42);

-- Fixtures: the chat fixture of the test helpers (tests.create_chat_fixture).
select tests.create_chat_fixture();

-- Their ids as psql variables (:'client'), for statements run under another role.
select
  tests.uid('client') as client,
  tests.uid('reader') as reader,
  tests.uid('outsider') as outsider,
  tests.uid('admin') as admin,
  tests.uid('other_reader') as other_reader
\gset

select tests.create_affected_rows();

-- ---------------------------------------------------------------- anon
reset role;
select tests.clear_authentication();
select throws_ok(
  $$ select * from public.chat_sessions $$,
  '42501', 'permission denied for table chat_sessions',
  'An anonymous caller cannot read sessions.'
);
select throws_ok(
  format($$ insert into public.chat_sessions (participants, type) values (array[%L]::uuid [], 'support') $$, :'client'),
  '42501', 'permission denied for table chat_sessions',
  'An anonymous caller cannot create a session.'
);
select throws_ok(
  $$ update public.chat_sessions set title = 'Anon was here' where id = '5e000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table chat_sessions',
  'An anonymous caller cannot update a session.'
);
select throws_ok(
  $$ delete from public.chat_sessions where id = '5e000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table chat_sessions',
  'An anonymous caller cannot delete a session.'
);

-- ---------------------------------------------------------------- client participant
reset role;
select tests.authenticate_as('client');
select results_eq(
  $$ select id from public.chat_sessions order by id $$,
  $$ values ('5e000000-0000-4000-8000-000000000001'::uuid), ('5e000000-0000-4000-8000-000000000002'::uuid) $$,
  'The client participant reads exactly the sessions they take part in, closed ones included.'
);
select lives_ok(
  format($$ insert into public.chat_sessions (participants, type, title)
     values (array[%L, %L]::uuid [],
             'support', 'Opened by the client') $$, :'client', :'reader'),
  'The client participant can create a session they take part in.'
);
select results_eq(
  $$ select created_by from public.chat_sessions where title = 'Opened by the client' $$,
  format($$ values (%L::uuid) $$, :'client'),
  'A session created by the client records the client as its creator by default.'
);
select throws_ok(
  format($$ insert into public.chat_sessions (participants, type)
     values (array[%L, %L]::uuid [], 'support') $$, :'reader', :'other_reader'),
  '42501', 'new row violates row-level security policy for table "chat_sessions"',
  'The client cannot create a session they do not take part in.'
);
select throws_ok(
  format($$ insert into public.chat_sessions (participants, type, created_by)
     values (array[%L, %L]::uuid [],
             'support', %L) $$, :'client', :'reader', :'reader'),
  '42501', 'new row violates row-level security policy for table "chat_sessions"',
  'The client cannot create a session in another user''s name.'
);
select is(
  pg_temp.affected_rows($$ update public.chat_sessions set title = 'Renamed by the client' where id = '5e000000-0000-4000-8000-000000000001' $$),
  1,
  'The client participant can rename a session they take part in.'
);
select is(
  pg_temp.affected_rows($$ update public.chat_sessions set title = 'Hijacked' where id = '5e000000-0000-4000-8000-000000000003' $$),
  0,
  'The client cannot rename a session they do not take part in (no row is touched).'
);
select throws_ok(
  $$ update public.chat_sessions set updated_at = now() - interval '1 year' where id = '5e000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table chat_sessions',
  'The client cannot update a session column other than title and status.'
);
select throws_ok(
  format($$ update public.chat_sessions
     set participants = array[%L, %L]::uuid []
     where id = '5e000000-0000-4000-8000-000000000001' $$, :'client', :'outsider'),
  '42501', 'permission denied for table chat_sessions',
  'The client cannot change who takes part in a session.'
);
select throws_ok(
  $$ update public.chat_sessions set status = 'active' where id = '5e000000-0000-4000-8000-000000000002' $$,
  '55000', 'a closed chat session cannot be reopened',
  'The client cannot reopen a closed session.'
);
select throws_ok(
  $$ delete from public.chat_sessions where id = '5e000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table chat_sessions',
  'The client cannot delete a session.'
);

-- ---------------------------------------------------------------- reader participant
reset role;
select tests.authenticate_as('reader');
select results_eq(
  $$ select coalesce(title, id::text) from public.chat_sessions order by 1 $$,
  $$ values ('Closed support chat'), ('Opened by the client'), ('Renamed by the client') $$,
  'The reader participant reads the sessions they take part in, including one the client opened with them.'
);
select lives_ok(
  format($$ insert into public.chat_sessions (participants, type, booking_id, title)
     values (array[%L, %L]::uuid [],
             'booking', 'b0000000-0000-4000-8000-000000000012', 'Opened by the reader') $$, :'reader', :'client'),
  'The reader participant can create a booking session they take part in.'
);
select is(
  pg_temp.affected_rows($$ update public.chat_sessions set status = 'closed' where title = 'Opened by the reader' $$),
  1,
  'The reader participant can close a session they take part in.'
);
select results_eq(
  $$ select status, closed_at is not null from public.chat_sessions where title = 'Opened by the reader' $$,
  $$ values ('closed'::text, true) $$,
  'Closing a session stamps closed_at.'
);
select throws_ok(
  $$ update public.chat_sessions set type = 'emergency' where id = '5e000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table chat_sessions',
  'The reader cannot change the type of a session.'
);
select throws_ok(
  $$ delete from public.chat_sessions where title = 'Opened by the reader' $$,
  '42501', 'permission denied for table chat_sessions',
  'The reader cannot delete a session, even one they created.'
);

-- ---------------------------------------------------------------- outsider
reset role;
select tests.authenticate_as('outsider');
select results_eq(
  $$ select id from public.chat_sessions order by id $$,
  $$ values ('5e000000-0000-4000-8000-000000000003'::uuid) $$,
  'The outsider reads only their own session.'
);
select is_empty(
  $$ select id from public.chat_sessions where id = '5e000000-0000-4000-8000-000000000001' $$,
  'The outsider cannot read a session they do not take part in, even by id.'
);
select throws_ok(
  format($$ insert into public.chat_sessions (participants, type)
     values (array[%L, %L]::uuid [], 'support') $$, :'client', :'reader'),
  '42501', 'new row violates row-level security policy for table "chat_sessions"',
  'The outsider cannot create a session between other users.'
);
select is(
  pg_temp.affected_rows($$ update public.chat_sessions set status = 'closed' where id = '5e000000-0000-4000-8000-000000000001' $$),
  0,
  'The outsider cannot close a session they do not take part in (no row is touched).'
);
select throws_ok(
  $$ delete from public.chat_sessions where id = '5e000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table chat_sessions',
  'The outsider cannot delete a session.'
);

-- ---------------------------------------------------------------- admin (not a participant)
reset role;
select tests.authenticate_as('admin');
select is_empty(
  $$ select id from public.chat_sessions
     where id in ('5e000000-0000-4000-8000-000000000001', '5e000000-0000-4000-8000-000000000002',
                  '5e000000-0000-4000-8000-000000000003') $$,
  'The admin does not read sessions they take part in directly (only through audited functions).'
);
select lives_ok(
  format($$ insert into public.chat_sessions (participants, type, title)
     values (array[%L, %L]::uuid [],
             'support', 'Opened by the admin') $$, :'client', :'reader'),
  'The admin can create a session between other users.'
);
select results_eq(
  $$ select title from public.chat_sessions order by id $$,
  $$ values ('Opened by the admin') $$,
  'The admin reads the session they created without taking part in it, and no other.'
);
select is(
  pg_temp.affected_rows($$ update public.chat_sessions set title = 'Renamed by the admin' where id = '5e000000-0000-4000-8000-000000000001' $$),
  0,
  'The admin cannot update a session they do not take part in (no row is touched).'
);
select is(
  pg_temp.affected_rows($$ update public.chat_sessions set status = 'closed' where title = 'Opened by the admin' $$),
  0,
  'The admin cannot update even a session they created without taking part in it.'
);
select throws_ok(
  $$ delete from public.chat_sessions where title = 'Opened by the admin' $$,
  '42501', 'permission denied for table chat_sessions',
  'The admin cannot delete a session.'
);

-- ---------------------------------------------------------------- forged admin claim
reset role;
select tests.authenticate_as('forger');
select throws_ok(
  format($$ insert into public.chat_sessions (participants, type)
     values (array[%L, %L]::uuid [], 'support') $$, :'client', :'reader'),
  '42501', 'new row violates row-level security policy for table "chat_sessions"',
  'A user whose user_metadata says admin is not an admin: they cannot create a session for others.'
);
select is_empty(
  $$ select id from public.chat_sessions $$,
  'A user whose user_metadata says admin reads no session they do not take part in.'
);

-- ---------------------------------------------------------------- admin taking part
-- S4: a closed session between the client and the admin. Only the admin may reopen it.
reset role;
select set_config('request.jwt.claims', '', true);
insert into public.chat_sessions (id, participants, type, created_by, status, closed_at)
values (
  '5e000000-0000-4000-8000-000000000004',
  array[:'client', :'admin']::uuid[],
  'support', :'admin', 'closed', now()
);
reset role;
select tests.authenticate_as('client');
select throws_ok(
  $$ update public.chat_sessions set status = 'active' where id = '5e000000-0000-4000-8000-000000000004' $$,
  '55000', 'a closed chat session cannot be reopened',
  'The client cannot reopen a closed session they share with an admin.'
);
reset role;
select tests.authenticate_as('admin');
select is(
  pg_temp.affected_rows($$ update public.chat_sessions set status = 'active' where id = '5e000000-0000-4000-8000-000000000004' $$),
  1,
  'An admin who takes part in a closed session can reopen it.'
);
select results_eq(
  $$ select status, closed_at from public.chat_sessions where id = '5e000000-0000-4000-8000-000000000004' $$,
  $$ values ('active'::text, null::timestamptz) $$,
  'Reopening a session clears closed_at.'
);

-- ---------------------------------------------------------------- service role
reset role;
select tests.authenticate_as_service_role();
select results_eq(
  $$ select count(*)::int from public.chat_sessions where id::text like '5e000000-%' or title like 'Opened by the %' $$,
  array[7],
  'The service role reads every session.'
);
select lives_ok(
  format($$ insert into public.chat_sessions (id, participants, type)
     values ('5e000000-0000-4000-8000-000000000015', array[%L]::uuid [], 'emergency') $$, :'outsider'),
  'The service role can create any session.'
);
select is(
  pg_temp.affected_rows($$ update public.chat_sessions set status = 'active' where id = '5e000000-0000-4000-8000-000000000002' $$),
  1,
  'The service role can reopen a closed session.'
);
select throws_ok(
  format($$ update public.chat_sessions set participants = array[%L]::uuid []
     where id = '5e000000-0000-4000-8000-000000000001' $$, :'outsider'),
  '42501', 'chat session id, participants, type, booking_id, created_by and created_at cannot change',
  'Not even the service role can change the participants of a session.'
);
select is(
  pg_temp.affected_rows($$ delete from public.chat_sessions where id = '5e000000-0000-4000-8000-000000000015' $$),
  1,
  'The service role can delete a session.'
);

select * from finish();
rollback;
