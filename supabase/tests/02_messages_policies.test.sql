-- chat_messages: what each actor may select, insert, update and delete.
begin;
set local search_path = extensions, public;
select plan(38);

-- Fixtures: the chat fixture of the test helpers (tests.create_chat_fixture).
select tests.create_chat_fixture();

-- Their ids as psql variables (:'client'), for statements run under another role.
select
  tests.uid('client') as client,
  tests.uid('reader') as reader,
  tests.uid('other_reader') as other_reader
\gset

select tests.create_affected_rows();

-- ---------------------------------------------------------------- anon
reset role;
select tests.clear_authentication();
select throws_ok(
  $$ select * from public.chat_messages $$,
  '42501', 'permission denied for table chat_messages',
  'An anonymous caller cannot read messages.'
);
select throws_ok(
  $$ insert into public.chat_messages (session_id, content) values ('5e000000-0000-4000-8000-000000000001', 'Anon says hi') $$,
  '42501', 'permission denied for table chat_messages',
  'An anonymous caller cannot post a message.'
);
select throws_ok(
  $$ update public.chat_messages set content = 'Edited by anon' where id = '3e000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table chat_messages',
  'An anonymous caller cannot edit a message.'
);
select throws_ok(
  $$ delete from public.chat_messages where id = '3e000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table chat_messages',
  'An anonymous caller cannot delete a message.'
);

-- ---------------------------------------------------------------- client participant
reset role;
select tests.authenticate_as('client');
select results_eq(
  $$ select id from public.chat_messages order by id $$,
  $$ values ('3e000000-0000-4000-8000-000000000001'::uuid), ('3e000000-0000-4000-8000-000000000002'::uuid),
            ('3e000000-0000-4000-8000-000000000003'::uuid) $$,
  'The client participant reads exactly the messages of their sessions, closed ones included.'
);
select lives_ok(
  $$ insert into public.chat_messages (id, session_id, content)
     values ('3e000000-0000-4000-8000-000000000011', '5e000000-0000-4000-8000-000000000001', 'A direct insert by the client') $$,
  'The client participant can post to an active session they take part in.'
);
select results_eq(
  $$ select sender_id from public.chat_messages where id = '3e000000-0000-4000-8000-000000000011' $$,
  format($$ values (%L::uuid) $$, :'client'),
  'A posted message has the poster as its sender by default.'
);
select results_eq(
  $$ select last_message_at = now() from public.chat_sessions where id = '5e000000-0000-4000-8000-000000000001' $$,
  $$ values (true) $$,
  'Posting moves the session''s last_message_at to the new message, though the client may not update it.'
);
select throws_ok(
  format($$ insert into public.chat_messages (session_id, sender_id, content)
     values ('5e000000-0000-4000-8000-000000000001', %L, 'Pretending to be the reader') $$, :'reader'),
  '42501', 'new row violates row-level security policy for table "chat_messages"',
  'The client cannot post in another participant''s name.'
);
select throws_ok(
  $$ insert into public.chat_messages (session_id, type, content)
     values ('5e000000-0000-4000-8000-000000000001', 'system', 'Session closed') $$,
  '42501', 'new row violates row-level security policy for table "chat_messages"',
  'The client cannot post a system message.'
);
select throws_ok(
  $$ insert into public.chat_messages (session_id, content) values ('5e000000-0000-4000-8000-000000000002', 'Too late') $$,
  '42501', 'new row violates row-level security policy for table "chat_messages"',
  'The client cannot post to a closed session.'
);
select throws_ok(
  $$ insert into public.chat_messages (session_id, content) values ('5e000000-0000-4000-8000-000000000003', 'Gatecrashing') $$,
  '42501', 'new row violates row-level security policy for table "chat_messages"',
  'The client cannot post to a session they do not take part in.'
);
select throws_ok(
  $$ insert into public.chat_messages (session_id, content, reply_to_message_id)
     values ('5e000000-0000-4000-8000-000000000001', 'Replying across sessions', '3e000000-0000-4000-8000-000000000004') $$,
  '23503', 'insert or update on table "chat_messages" violates foreign key constraint "chat_messages_reply_same_session_fkey"',
  'A reply must quote a message of the same session.'
);
select throws_ok(
  $$ update public.chat_messages set content = 'Edited' where id = '3e000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table chat_messages',
  'The client cannot edit their own message.'
);
select throws_ok(
  $$ delete from public.chat_messages where id = '3e000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table chat_messages',
  'The client cannot delete their own message.'
);

-- ---------------------------------------------------------------- reader participant
reset role;
select tests.authenticate_as('reader');
select results_eq(
  $$ select id from public.chat_messages order by id $$,
  $$ values ('3e000000-0000-4000-8000-000000000001'::uuid), ('3e000000-0000-4000-8000-000000000002'::uuid),
            ('3e000000-0000-4000-8000-000000000003'::uuid), ('3e000000-0000-4000-8000-000000000011'::uuid) $$,
  'The reader participant reads the messages of their sessions, the client''s new one included.'
);
select lives_ok(
  $$ insert into public.chat_messages (session_id, type, content, metadata, reply_to_message_id)
     values ('5e000000-0000-4000-8000-000000000001', 'text', 'Replying to the client', '{"lang": "en"}',
             '3e000000-0000-4000-8000-000000000011') $$,
  'The reader participant can reply in an active session they take part in.'
);
select throws_ok(
  format($$ insert into public.chat_messages (session_id, sender_id, content)
     values ('5e000000-0000-4000-8000-000000000001', %L, 'Pretending to be the client') $$, :'client'),
  '42501', 'new row violates row-level security policy for table "chat_messages"',
  'The reader cannot post in the client''s name.'
);
select throws_ok(
  $$ update public.chat_messages set content = 'Edited' where id = '3e000000-0000-4000-8000-000000000002' $$,
  '42501', 'permission denied for table chat_messages',
  'The reader cannot edit a message.'
);
select throws_ok(
  $$ delete from public.chat_messages where id = '3e000000-0000-4000-8000-000000000002' $$,
  '42501', 'permission denied for table chat_messages',
  'The reader cannot delete a message.'
);

-- ---------------------------------------------------------------- outsider
reset role;
select tests.authenticate_as('outsider');
select results_eq(
  $$ select id from public.chat_messages order by id $$,
  $$ values ('3e000000-0000-4000-8000-000000000004'::uuid) $$,
  'The outsider reads only the messages of their own session.'
);
select is_empty(
  $$ select id from public.chat_messages where session_id = '5e000000-0000-4000-8000-000000000001' $$,
  'The outsider reads no message of a session they do not take part in.'
);
select throws_ok(
  $$ insert into public.chat_messages (session_id, content) values ('5e000000-0000-4000-8000-000000000001', 'Gatecrashing') $$,
  '42501', 'new row violates row-level security policy for table "chat_messages"',
  'The outsider cannot post to a session they do not take part in.'
);
select throws_ok(
  $$ update public.chat_messages set content = 'Edited' where id = '3e000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table chat_messages',
  'The outsider cannot edit a message.'
);
select throws_ok(
  $$ delete from public.chat_messages where id = '3e000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table chat_messages',
  'The outsider cannot delete a message.'
);

-- ---------------------------------------------------------------- admin (not a participant)
reset role;
select tests.authenticate_as('admin');
select is_empty(
  $$ select id from public.chat_messages $$,
  'The admin reads no message directly (only through audited functions).'
);
select throws_ok(
  $$ insert into public.chat_messages (session_id, content) values ('5e000000-0000-4000-8000-000000000001', 'Admin here') $$,
  '42501', 'new row violates row-level security policy for table "chat_messages"',
  'The admin cannot post to a session they do not take part in.'
);
select throws_ok(
  $$ update public.chat_messages set content = 'Moderated' where id = '3e000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table chat_messages',
  'The admin cannot edit a message directly.'
);
select throws_ok(
  $$ delete from public.chat_messages where id = '3e000000-0000-4000-8000-000000000001' $$,
  '42501', 'permission denied for table chat_messages',
  'The admin cannot delete a message directly.'
);

-- ---------------------------------------------------------------- forged admin claim
reset role;
select tests.authenticate_as('forger');
select is_empty(
  $$ select id from public.chat_messages $$,
  'A user whose user_metadata says admin reads no message.'
);
select throws_ok(
  $$ insert into public.chat_messages (session_id, content) values ('5e000000-0000-4000-8000-000000000001', 'Admin here') $$,
  '42501', 'new row violates row-level security policy for table "chat_messages"',
  'A user whose user_metadata says admin cannot post to a session they do not take part in.'
);

-- ---------------------------------------------------------------- service role
reset role;
select tests.authenticate_as_service_role();
select results_eq(
  $$ select count(*)::int from public.chat_messages where session_id::text like '5e000000-%' $$,
  array[6],
  'The service role reads every message.'
);
select lives_ok(
  $$ insert into public.chat_messages (id, session_id, sender_id, type, content)
     values ('3e000000-0000-4000-8000-000000000021', '5e000000-0000-4000-8000-000000000002', null, 'system', 'Archived') $$,
  'The service role can post a system message, even to a closed session.'
);
select is(
  pg_temp.affected_rows($$ update public.chat_messages set content = '[removed by moderation]' where id = '3e000000-0000-4000-8000-000000000004' $$),
  1,
  'The service role can edit the content of a message.'
);
select throws_ok(
  $$ update public.chat_messages set session_id = '5e000000-0000-4000-8000-000000000001' where id = '3e000000-0000-4000-8000-000000000004' $$,
  '42501', 'chat message id, seq, session_id, sender_id and created_at cannot change',
  'Not even the service role can move a message to another session.'
);
select throws_ok(
  format($$ update public.chat_messages set sender_id = %L where id = '3e000000-0000-4000-8000-000000000004' $$, :'other_reader'),
  '42501', 'chat message id, seq, session_id, sender_id and created_at cannot change',
  'Not even the service role can reattribute a message to another sender.'
);
select throws_ok(
  $$ update public.chat_messages set sender_id = null where id = '3e000000-0000-4000-8000-000000000004' $$,
  '42501', 'chat message id, seq, session_id, sender_id and created_at cannot change',
  'Not even the service role can clear the sender of a message (only deleting the user does).'
);
select is(
  pg_temp.affected_rows($$ delete from public.chat_messages where id = '3e000000-0000-4000-8000-000000000004' $$),
  1,
  'The service role can delete a message.'
);

select * from finish();
rollback;
