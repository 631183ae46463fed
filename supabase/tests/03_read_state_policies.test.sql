-- chat_read_state: what each actor may select, insert, update and delete.
begin;
set local search_path = extensions, public;
select plan(32);

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

-- Read state: the reader has read S1 up to the client's first message; the outsider has
-- read their own session.
insert into public.chat_read_state (session_id, user_id, last_read_message_id, last_read_at, last_read_seq)
select
  m.session_id,
  r.user_id,
  m.id,
  m.created_at,
  m.seq
from (
  values (:'reader'::uuid, '3e000000-0000-4000-8000-000000000001'::uuid),
  (:'outsider'::uuid, '3e000000-0000-4000-8000-000000000004'::uuid))
  as r (user_id, message_id)
inner join public.chat_messages as m on r.message_id = m.id;

-- ---------------------------------------------------------------- anon
reset role;
select tests.clear_authentication();
select throws_ok(
  $$ select * from public.chat_read_state $$,
  '42501', 'permission denied for table chat_read_state',
  'An anonymous caller cannot read read state.'
);
select throws_ok(
  format($$ insert into public.chat_read_state (session_id, user_id, last_read_message_id, last_read_at, last_read_seq)
     values ('5e000000-0000-4000-8000-000000000001', %L,
             '3e000000-0000-4000-8000-000000000001', now(), 1) $$, :'client'),
  '42501', 'permission denied for table chat_read_state',
  'An anonymous caller cannot create read state.'
);
select throws_ok(
  $$ update public.chat_read_state set updated_at = now() $$,
  '42501', 'permission denied for table chat_read_state',
  'An anonymous caller cannot update read state.'
);
select throws_ok(
  $$ delete from public.chat_read_state $$,
  '42501', 'permission denied for table chat_read_state',
  'An anonymous caller cannot delete read state.'
);

-- ---------------------------------------------------------------- client participant
reset role;
select tests.authenticate_as('client');
select results_eq(
  $$ select session_id, user_id, last_read_message_id from public.chat_read_state order by user_id $$,
  format($$ values ('5e000000-0000-4000-8000-000000000001'::uuid, %L::uuid,
             '3e000000-0000-4000-8000-000000000001'::uuid) $$, :'reader'),
  'The client participant reads the read state of the other participants of their sessions (read receipts), and no other.'
);
select lives_ok(
  format($$ insert into public.chat_read_state (session_id, user_id, last_read_message_id, last_read_at, last_read_seq)
     select m.session_id, %L, m.id, m.created_at, m.seq
     from public.chat_messages as m where m.id = '3e000000-0000-4000-8000-000000000002' $$, :'client'),
  'The client participant can create their own read state in a session they take part in.'
);
select throws_ok(
  format($$ insert into public.chat_read_state (session_id, user_id, last_read_message_id, last_read_at, last_read_seq)
     values ('5e000000-0000-4000-8000-000000000002', %L,
             '3e000000-0000-4000-8000-000000000003', now(), 1) $$, :'reader'),
  '42501', 'new row violates row-level security policy for table "chat_read_state"',
  'The client cannot create read state for another participant.'
);
select throws_ok(
  format($$ insert into public.chat_read_state (session_id, user_id, last_read_message_id, last_read_at, last_read_seq)
     values ('5e000000-0000-4000-8000-000000000003', %L,
             '3e000000-0000-4000-8000-000000000004', now(), 1) $$, :'client'),
  '42501', 'new row violates row-level security policy for table "chat_read_state"',
  'The client cannot create read state in a session they do not take part in.'
);
select throws_ok(
  format($$ insert into public.chat_read_state (session_id, user_id, last_read_message_id, last_read_at, last_read_seq)
     values ('5e000000-0000-4000-8000-000000000002', %L,
             '3e000000-0000-4000-8000-000000000001', now(), 1) $$, :'client'),
  '23503', 'insert or update on table "chat_read_state" violates foreign key constraint "chat_read_state_message_fkey"',
  'A read cursor must point at a message of its own session.'
);
select is(
  pg_temp.affected_rows(
    format($$ update public.chat_read_state set updated_at = now()
       where session_id = '5e000000-0000-4000-8000-000000000001' and user_id = %L $$, :'client')
  ),
  1,
  'The client participant can advance their own read state.'
);
select is(
  pg_temp.affected_rows(
    format($$ update public.chat_read_state set last_read_message_id = '3e000000-0000-4000-8000-000000000002'
       where session_id = '5e000000-0000-4000-8000-000000000001' and user_id = %L $$, :'reader')
  ),
  0,
  'The client cannot move another participant''s read state (no row is touched).'
);
select throws_ok(
  format($$ update public.chat_read_state set user_id = %L
     where user_id = %L $$, :'reader', :'client'),
  '42501', 'permission denied for table chat_read_state',
  'The client cannot hand their read state to another user.'
);
select throws_ok(
  format($$ delete from public.chat_read_state where user_id = %L $$, :'client'),
  '42501', 'permission denied for table chat_read_state',
  'The client cannot delete their read state.'
);

-- ---------------------------------------------------------------- reader participant
reset role;
select tests.authenticate_as('reader');
select results_eq(
  $$ select user_id from public.chat_read_state order by user_id $$,
  format($$ values (%L::uuid), (%L::uuid) $$, :'client', :'reader'),
  'The reader participant reads their own read state and the client''s.'
);
select lives_ok(
  format($$ insert into public.chat_read_state (session_id, user_id, last_read_message_id, last_read_at, last_read_seq)
     select m.session_id, %L, m.id, m.created_at, m.seq
     from public.chat_messages as m where m.id = '3e000000-0000-4000-8000-000000000003' $$, :'reader'),
  'The reader participant can create their own read state, in a closed session too.'
);
select is(
  pg_temp.affected_rows(
    format($$ update public.chat_read_state
       set (last_read_message_id, last_read_at, last_read_seq, updated_at) =
           (select m.id, m.created_at, m.seq, now() from public.chat_messages as m
            where m.id = '3e000000-0000-4000-8000-000000000002')
       where session_id = '5e000000-0000-4000-8000-000000000001' and user_id = %L $$, :'reader')
  ),
  1,
  'The reader participant can advance their own read state.'
);
select is(
  pg_temp.affected_rows(
    format($$ update public.chat_read_state set updated_at = now() where user_id = %L $$, :'client')
  ),
  0,
  'The reader cannot update the client''s read state (no row is touched).'
);
select throws_ok(
  format($$ delete from public.chat_read_state where user_id = %L $$, :'reader'),
  '42501', 'permission denied for table chat_read_state',
  'The reader cannot delete their read state.'
);

-- ---------------------------------------------------------------- outsider
reset role;
select tests.authenticate_as('outsider');
select results_eq(
  $$ select session_id from public.chat_read_state $$,
  $$ values ('5e000000-0000-4000-8000-000000000003'::uuid) $$,
  'The outsider reads only the read state of their own session.'
);
select is_empty(
  $$ select user_id from public.chat_read_state where session_id = '5e000000-0000-4000-8000-000000000001' $$,
  'The outsider cannot learn who read what in a session they do not take part in.'
);
select throws_ok(
  format($$ insert into public.chat_read_state (session_id, user_id, last_read_message_id, last_read_at, last_read_seq)
     values ('5e000000-0000-4000-8000-000000000001', %L,
             '3e000000-0000-4000-8000-000000000001', now(), 1) $$, :'outsider'),
  '42501', 'new row violates row-level security policy for table "chat_read_state"',
  'The outsider cannot create read state in a session they do not take part in.'
);
select is(
  pg_temp.affected_rows(
    $$ update public.chat_read_state set updated_at = now() where session_id = '5e000000-0000-4000-8000-000000000001' $$
  ),
  0,
  'The outsider cannot update read state of a session they do not take part in (no row is touched).'
);
select throws_ok(
  $$ delete from public.chat_read_state where session_id = '5e000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table chat_read_state',
  'The outsider cannot delete read state.'
);

-- ---------------------------------------------------------------- admin (not a participant)
reset role;
select tests.authenticate_as('admin');
select is_empty(
  $$ select user_id from public.chat_read_state $$,
  'The admin reads no read state directly.'
);
select throws_ok(
  format($$ insert into public.chat_read_state (session_id, user_id, last_read_message_id, last_read_at, last_read_seq)
     values ('5e000000-0000-4000-8000-000000000001', %L,
             '3e000000-0000-4000-8000-000000000001', now(), 1) $$, :'admin'),
  '42501', 'new row violates row-level security policy for table "chat_read_state"',
  'The admin cannot create read state in a session they do not take part in.'
);
select is(
  pg_temp.affected_rows($$ update public.chat_read_state set updated_at = now() $$),
  0,
  'The admin cannot update any read state (no row is touched).'
);
select throws_ok(
  $$ delete from public.chat_read_state $$,
  '42501', 'permission denied for table chat_read_state',
  'The admin cannot delete read state.'
);

-- ---------------------------------------------------------------- forged admin claim
reset role;
select tests.authenticate_as('forger');
select is_empty(
  $$ select user_id from public.chat_read_state $$,
  'A user whose user_metadata says admin reads no read state.'
);

-- ---------------------------------------------------------------- service role
reset role;
select tests.authenticate_as_service_role();
select results_eq(
  $$ select count(*)::int from public.chat_read_state where session_id::text like '5e000000-%' $$,
  array[4],
  'The service role reads every read state.'
);
select lives_ok(
  format($$ insert into public.chat_read_state (session_id, user_id, last_read_message_id, last_read_at, last_read_seq)
     select m.session_id, %L, m.id, m.created_at, m.seq
     from public.chat_messages as m where m.id = '3e000000-0000-4000-8000-000000000004' $$, :'other_reader'),
  'The service role can create read state for any participant.'
);
select is(
  pg_temp.affected_rows($$ update public.chat_read_state set updated_at = now() where session_id::text like '5e000000-%' $$),
  5,
  'The service role can update any read state.'
);
select is(
  pg_temp.affected_rows(format($$ delete from public.chat_read_state where user_id = %L $$, :'other_reader')),
  1,
  'The service role can delete read state.'
);

select * from finish();
rollback;
