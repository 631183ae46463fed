-- mark_chat_messages_read: the read cursor only moves forward; the count excludes own messages.
begin;
set local search_path = extensions, public;
select plan(19);

-- Fixtures: the chat fixture of the test helpers (tests.create_chat_fixture).
select tests.create_chat_fixture();

-- Their ids as psql variables (:'client'), for statements run under another role.
select
  tests.uid('client') as client,
  tests.uid('reader') as reader
\gset

-- More of S1: M1 client, M2 reader, M5 reader, M6 client, then M7 and M8 from the reader at
-- the very same instant (their order is given by seq). S5: an active session with no message.
insert into public.chat_messages (id, session_id, sender_id, content, created_at)
values
(
  '3e000000-0000-4000-8000-000000000005', '5e000000-0000-4000-8000-000000000001',
  :'reader', 'Are you still there?', now() - interval '90 seconds'
),
(
  '3e000000-0000-4000-8000-000000000006', '5e000000-0000-4000-8000-000000000001',
  :'client', 'Yes, sorry', now() - interval '30 seconds'
),
(
  '3e000000-0000-4000-8000-000000000007', '5e000000-0000-4000-8000-000000000001',
  :'reader', 'Same instant, first', now() - interval '10 seconds'
);
insert into public.chat_messages (id, session_id, sender_id, content, created_at)
values
(
  '3e000000-0000-4000-8000-000000000008', '5e000000-0000-4000-8000-000000000001',
  :'reader', 'Same instant, second', now() - interval '10 seconds'
);
insert into public.chat_sessions (id, participants, type, created_by)
values (
  '5e000000-0000-4000-8000-000000000005',
  array[:'client', :'reader']::uuid[],
  'support', :'client'
);

-- ---------------------------------------------------------------- who may mark
reset role;
select tests.authenticate_with_claims('{"role": "authenticated"}');
select throws_ok(
  $$ select public.mark_chat_messages_read('5e000000-0000-4000-8000-000000000001') $$,
  '28000', 'not authenticated',
  'A token without a subject cannot mark messages read.'
);
reset role;
select tests.authenticate_as_service_role();
select throws_ok(
  $$ select public.mark_chat_messages_read('5e000000-0000-4000-8000-000000000001') $$,
  '28000', 'not authenticated',
  'The service role has no read cursor of its own.'
);
reset role;
select tests.authenticate_as('outsider');
select throws_ok(
  $$ select public.mark_chat_messages_read('5e000000-0000-4000-8000-000000000001') $$,
  'P0002', 'chat session 5e000000-0000-4000-8000-000000000001 not found',
  'The outsider cannot mark messages read in a session they do not take part in.'
);
reset role;
select tests.authenticate_as('admin');
select throws_ok(
  $$ select public.mark_chat_messages_read('5e000000-0000-4000-8000-000000000001', '3e000000-0000-4000-8000-000000000001') $$,
  'P0002', 'chat session 5e000000-0000-4000-8000-000000000001 not found',
  'The admin cannot mark messages read in a session they do not take part in.'
);

-- ---------------------------------------------------------------- the client's cursor
reset role;
select tests.authenticate_as('client');
select throws_ok(
  $$ select public.mark_chat_messages_read('5e000000-0000-4000-8000-000000000001', '3e000000-0000-4000-8000-000000000004') $$,
  '22023', 'up_to_message_id is not a message of this session',
  'The cursor cannot point at a message of another session.'
);
select throws_ok(
  $$ select public.mark_chat_messages_read('5e000000-0000-4000-8000-0000000000ff') $$,
  'P0002', 'chat session 5e000000-0000-4000-8000-0000000000ff not found',
  'A session that does not exist is not found.'
);
select is(
  public.mark_chat_messages_read('5e000000-0000-4000-8000-000000000001', '3e000000-0000-4000-8000-000000000002'),
  1,
  'Marking up to the reader''s first message reads one message: the client''s own do not count.'
);
select results_eq(
  format($$ select r.last_read_message_id, r.last_read_at = m.created_at, r.last_read_seq = m.seq
     from public.chat_read_state as r
     inner join public.chat_messages as m on m.id = '3e000000-0000-4000-8000-000000000002'
     where r.session_id = '5e000000-0000-4000-8000-000000000001' and r.user_id = %L $$, :'client'),
  $$ values ('3e000000-0000-4000-8000-000000000002'::uuid, true, true) $$,
  'The cursor stores the message with its created_at and seq.'
);
select is(
  public.mark_chat_messages_read('5e000000-0000-4000-8000-000000000001', '3e000000-0000-4000-8000-000000000001'),
  0,
  'Marking an older message reads nothing.'
);
select results_eq(
  format($$ select last_read_message_id from public.chat_read_state
     where session_id = '5e000000-0000-4000-8000-000000000001' and user_id = %L $$, :'client'),
  $$ values ('3e000000-0000-4000-8000-000000000002'::uuid) $$,
  'The cursor never moves backwards.'
);
select is(
  public.mark_chat_messages_read('5e000000-0000-4000-8000-000000000001', '3e000000-0000-4000-8000-000000000002'),
  0,
  'Marking the same message twice reads nothing the second time.'
);
select is(
  public.mark_chat_messages_read('5e000000-0000-4000-8000-000000000001', '3e000000-0000-4000-8000-000000000007'),
  2,
  'Marking up to the first of two simultaneous messages reads it and the one before, not the second.'
);
select is(
  public.mark_chat_messages_read('5e000000-0000-4000-8000-000000000001'),
  1,
  'Marking without a message reads up to the newest: the second simultaneous message.'
);
select results_eq(
  format($$ select last_read_message_id from public.chat_read_state
     where session_id = '5e000000-0000-4000-8000-000000000001' and user_id = %L $$, :'client'),
  $$ values ('3e000000-0000-4000-8000-000000000008'::uuid) $$,
  'The cursor is on the newest message, ties broken by seq.'
);
select is(
  public.mark_chat_messages_read('5e000000-0000-4000-8000-000000000005'),
  0,
  'Marking a session without messages reads nothing.'
);
select is_empty(
  $$ select 1 from public.chat_read_state where session_id = '5e000000-0000-4000-8000-000000000005' $$,
  'Marking a session without messages stores no cursor.'
);

-- ---------------------------------------------------------------- the reader's cursor
reset role;
select tests.authenticate_as('reader');
select is(
  public.mark_chat_messages_read('5e000000-0000-4000-8000-000000000001'),
  2,
  'The reader marking everything reads the client''s two messages.'
);
select is(
  public.mark_chat_messages_read('5e000000-0000-4000-8000-000000000002'),
  1,
  'Messages of a closed session can still be marked read.'
);
select results_eq(
  $$ select user_id, last_read_message_id from public.chat_read_state
     where session_id = '5e000000-0000-4000-8000-000000000001' order by user_id $$,
  format($$ values (%L::uuid, '3e000000-0000-4000-8000-000000000008'::uuid),
            (%L::uuid, '3e000000-0000-4000-8000-000000000008'::uuid) $$, :'client', :'reader'),
  'Each participant has one cursor per session, and sees the other''s.'
);

select * from finish();
rollback;
