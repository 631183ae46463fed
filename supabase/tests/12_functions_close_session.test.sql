-- close_chat_session: participants close their sessions; a system message records it.
begin;
set local search_path = extensions, public;
select plan(17);

-- Fixtures: the chat fixture of the test helpers (tests.create_chat_fixture).
select tests.create_chat_fixture();

-- Their ids as psql variables (:'client'), for statements run under another role.
select tests.uid('reader') as reader \gset

-- ---------------------------------------------------------------- who may close
reset role;
select tests.authenticate_with_claims('{"role": "authenticated"}');
select throws_ok(
  $$ select public.close_chat_session('5e000000-0000-4000-8000-000000000001') $$,
  '28000', 'not authenticated',
  'A token without a subject cannot close a session.'
);
reset role;
select tests.authenticate_as_service_role();
select throws_ok(
  $$ select public.close_chat_session('5e000000-0000-4000-8000-000000000001') $$,
  '28000', 'not authenticated',
  'The service role has no user id, so it cannot close through the function.'
);
reset role;
select tests.authenticate_as('outsider');
select throws_ok(
  $$ select public.close_chat_session('5e000000-0000-4000-8000-000000000001') $$,
  'P0002', 'chat session 5e000000-0000-4000-8000-000000000001 not found',
  'The outsider cannot close a session they do not take part in.'
);
reset role;
select tests.authenticate_as('admin');
select throws_ok(
  $$ select public.close_chat_session('5e000000-0000-4000-8000-000000000001') $$,
  'P0002', 'chat session 5e000000-0000-4000-8000-000000000001 not found',
  'The admin cannot close a session they do not take part in.'
);
reset role;
select tests.authenticate_as('forger');
select throws_ok(
  $$ select public.close_chat_session('5e000000-0000-4000-8000-000000000001') $$,
  'P0002', 'chat session 5e000000-0000-4000-8000-000000000001 not found',
  'A user whose user_metadata says admin cannot close a session of others.'
);
reset role;
select tests.authenticate_as('reader');
select throws_ok(
  $$ select public.close_chat_session('5e000000-0000-4000-8000-0000000000ff') $$,
  'P0002', 'chat session 5e000000-0000-4000-8000-0000000000ff not found',
  'A session that does not exist is not found.'
);
reset role;
select set_config('request.jwt.claims', '', true);
select results_eq(
  $$ select status from public.chat_sessions where id = '5e000000-0000-4000-8000-000000000001' $$,
  $$ values ('active'::text) $$,
  'No refused call closed the session.'
);

-- ---------------------------------------------------------------- the reader closes S1
reset role;
select tests.authenticate_as('reader');
create temporary table closed_row on commit drop as
select * from public.close_chat_session('5e000000-0000-4000-8000-000000000001');
select results_eq(
  $$ select id, status, closed_at from closed_row $$,
  $$ values ('5e000000-0000-4000-8000-000000000001'::uuid, 'closed'::text, now()) $$,
  'A participant closes their session; it is returned closed, with closed_at stamped.'
);
select results_eq(
  $$ select sender_id, type, content, metadata from public.chat_messages
     where session_id = '5e000000-0000-4000-8000-000000000001' and type = 'system' $$,
  format($$ values (%L::uuid, 'system'::text, 'Session closed'::text,
             '{"event": "session_closed"}'::jsonb) $$, :'reader'),
  'Closing leaves one system message in the session, sent in the name of whoever closed it.'
);
select results_eq(
  $$ select last_message_at from public.chat_sessions where id = '5e000000-0000-4000-8000-000000000001' $$,
  $$ values (now()) $$,
  'The system message moves the session''s last_message_at.'
);
select results_eq(
  $$ select c.id, c.status, c.closed_at, c.last_message_at, c.updated_at from closed_row as c $$,
  $$ select s.id, s.status, s.closed_at, s.last_message_at, s.updated_at from public.chat_sessions as s
     where s.id = '5e000000-0000-4000-8000-000000000001' $$,
  'The row close_chat_session returns is the session as stored, last_message_at included.'
);

-- ---------------------------------------------------------------- after closing
reset role;
select tests.authenticate_as('client');
select results_eq(
  $$ select status, closed_at from public.close_chat_session('5e000000-0000-4000-8000-000000000001') $$,
  $$ values ('closed'::text, now()) $$,
  'Closing a closed session again returns it unchanged.'
);
select results_eq(
  $$ select count(*)::int from public.chat_messages
     where session_id = '5e000000-0000-4000-8000-000000000001' and type = 'system' $$,
  array[1],
  'Closing twice leaves a single system message.'
);
select throws_ok(
  $$ select public.send_chat_message('5e000000-0000-4000-8000-000000000001', 'One more thing') $$,
  '55000', 'chat session 5e000000-0000-4000-8000-000000000001 is closed',
  'Nobody can send to a session once it is closed.'
);
select throws_ok(
  $$ update public.chat_sessions set status = 'active' where id = '5e000000-0000-4000-8000-000000000001' $$,
  '55000', 'a closed chat session cannot be reopened',
  'A participant cannot reopen the session they closed.'
);
select results_eq(
  $$ select count(*)::int from public.get_chat_messages('5e000000-0000-4000-8000-000000000001') $$,
  array[3],
  'The history of a closed session stays readable: two messages and the system notice.'
);
select results_eq(
  $$ select status, last_message ->> 'type' from public.list_my_chat_sessions()
     where id = '5e000000-0000-4000-8000-000000000001' $$,
  $$ values ('closed'::text, 'system'::text) $$,
  'The session list shows the session closed, with the system notice as its last message.'
);

select * from finish();
rollback;
