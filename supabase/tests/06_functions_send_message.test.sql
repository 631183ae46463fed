-- send_chat_message: who may send what, idempotent retries, file messages, every refusal.
begin;
set local search_path = extensions, public;
select plan(33);

-- Fixtures: the chat fixture of the test helpers (tests.create_chat_fixture).
select tests.create_chat_fixture();

-- Their ids as psql variables (:'client'), for statements run under another role.
select
  tests.uid('client') as client,
  tests.uid('reader') as reader,
  tests.uid('outsider') as outsider
\gset

-- Files already in the chat-files bucket: the client's voice note and the reader's photo
-- in S1, the outsider's document in S3.
insert into storage.objects (bucket_id, name, owner)
values
(
  'chat-files', '5e000000-0000-4000-8000-000000000001/' || :'client' || '/voice.ogg',
  :'client'
),
(
  'chat-files', '5e000000-0000-4000-8000-000000000001/' || :'reader' || '/photo.png',
  :'reader'
),
(
  'chat-files', '5e000000-0000-4000-8000-000000000003/' || :'outsider' || '/doc.pdf',
  :'outsider'
);

-- ---------------------------------------------------------------- who may send
reset role;
select tests.authenticate_with_claims('{"role": "authenticated"}');
select throws_ok(
  $$ select public.send_chat_message('5e000000-0000-4000-8000-000000000001', 'Hello') $$,
  '28000', 'not authenticated',
  'A token without a subject cannot send a message.'
);
reset role;
select tests.authenticate_as_service_role();
select throws_ok(
  $$ select public.send_chat_message('5e000000-0000-4000-8000-000000000001', 'Hello') $$,
  '28000', 'not authenticated',
  'The service role has no user id, so it cannot send through the function.'
);
reset role;
select tests.authenticate_as('outsider');
select throws_ok(
  $$ select public.send_chat_message('5e000000-0000-4000-8000-000000000001', 'Hello') $$,
  'P0002', 'chat session 5e000000-0000-4000-8000-000000000001 not found',
  'The outsider is told a session they do not take part in does not exist.'
);
select throws_ok(
  $$ select public.send_chat_message('5e000000-0000-4000-8000-000000000002', 'Hello') $$,
  'P0002', 'chat session 5e000000-0000-4000-8000-000000000002 not found',
  'The outsider learns nothing of another session''s state: a closed one is not found either.'
);
reset role;
select tests.authenticate_as('admin');
select throws_ok(
  $$ select public.send_chat_message('5e000000-0000-4000-8000-000000000001', 'Hello') $$,
  'P0002', 'chat session 5e000000-0000-4000-8000-000000000001 not found',
  'The admin cannot send to a session they do not take part in.'
);
reset role;
select tests.authenticate_as('forger');
select throws_ok(
  $$ select public.send_chat_message('5e000000-0000-4000-8000-000000000001', 'Hello') $$,
  'P0002', 'chat session 5e000000-0000-4000-8000-000000000001 not found',
  'A user whose user_metadata says admin cannot send to a session they do not take part in.'
);

reset role;
select tests.authenticate_as('client');
select throws_ok(
  $$ select public.send_chat_message('5e000000-0000-4000-8000-0000000000ff', 'Hello') $$,
  'P0002', 'chat session 5e000000-0000-4000-8000-0000000000ff not found',
  'A session that does not exist is not found.'
);
select throws_ok(
  $$ select public.send_chat_message(null, 'Hello') $$,
  '22023', 'session_id is required',
  'A message needs a session.'
);
select throws_ok(
  $$ select public.send_chat_message('5e000000-0000-4000-8000-000000000002', 'Hello again') $$,
  '55000', 'chat session 5e000000-0000-4000-8000-000000000002 is closed',
  'Nobody can send to a closed session.'
);

-- ---------------------------------------------------------------- a text message
select results_eq(
  $$ select m.session_id, m.sender_id, m.type, m.content, m.metadata, m.reply_to_message_id
     from public.send_chat_message('5e000000-0000-4000-8000-000000000001', 'Are you there?') as m $$,
  format($$ values ('5e000000-0000-4000-8000-000000000001'::uuid, %L::uuid,
             'text'::text, 'Are you there?'::text, '{}'::jsonb, null::uuid) $$, :'client'),
  'The client sends a text message to their active session, as themselves.'
);
select results_eq(
  $$ select last_message_at = now() from public.chat_sessions where id = '5e000000-0000-4000-8000-000000000001' $$,
  $$ values (true) $$,
  'Sending moves the session''s last_message_at.'
);
select results_eq(
  $$ select m.reply_to_message_id from public.send_chat_message('5e000000-0000-4000-8000-000000000001', 'Quoting the reader',
       reply_to_message_id => '3e000000-0000-4000-8000-000000000002') as m $$,
  $$ values ('3e000000-0000-4000-8000-000000000002'::uuid) $$,
  'A message can reply to a message of the same session.'
);
select throws_ok(
  $$ select public.send_chat_message('5e000000-0000-4000-8000-000000000001', 'Quoting another session',
       reply_to_message_id => '3e000000-0000-4000-8000-000000000004') $$,
  '22023', 'reply_to_message_id is not a message of this session',
  'A message cannot reply to a message of another session.'
);
select throws_ok(
  $$ select public.send_chat_message('5e000000-0000-4000-8000-000000000001', 'Quoting nothing',
       reply_to_message_id => '3e000000-0000-4000-8000-0000000000ff') $$,
  '22023', 'reply_to_message_id is not a message of this session',
  'A message cannot reply to a message that does not exist.'
);
select throws_ok(
  $$ select public.send_chat_message('5e000000-0000-4000-8000-000000000001', 'System voice', 'system') $$,
  '22023', 'type must be one of text, audio, image, file',
  'Nobody can send a system message through the function.'
);
select throws_ok(
  $$ select public.send_chat_message('5e000000-0000-4000-8000-000000000001', 'Hello', 'video') $$,
  '22023', 'type must be one of text, audio, image, file',
  'An unknown message type is refused.'
);
select throws_ok(
  $$ select public.send_chat_message('5e000000-0000-4000-8000-000000000001', '   ') $$,
  '22023', 'a text message needs non-empty content',
  'A blank text message is refused.'
);
select throws_ok(
  $$ select public.send_chat_message('5e000000-0000-4000-8000-000000000001') $$,
  '22023', 'a text message needs non-empty content',
  'A text message without content is refused.'
);
select throws_ok(
  $$ select public.send_chat_message('5e000000-0000-4000-8000-000000000001', repeat('a', 10001)) $$,
  '22023', 'content may be at most 10000 characters',
  'A message longer than 10000 characters is refused.'
);
select lives_ok(
  $$ select public.send_chat_message('5e000000-0000-4000-8000-000000000001', repeat('a', 10000)) $$,
  'A message of exactly 10000 characters is accepted.'
);
select throws_ok(
  $$ select public.send_chat_message('5e000000-0000-4000-8000-000000000001', 'Hello', metadata => '["not", "an", "object"]') $$,
  '22023', 'metadata must be a JSON object',
  'Metadata that is not a JSON object is refused.'
);
select throws_ok(
  $$ select public.send_chat_message('5e000000-0000-4000-8000-000000000001', 'Hello',
       metadata => jsonb_build_object('blob', repeat('z', 20000))) $$,
  '22023', 'metadata may be at most 16 kB',
  'Metadata larger than 16 kB is refused.'
);
select throws_ok(
  $$ select public.send_chat_message('5e000000-0000-4000-8000-000000000001', 'Hello', client_message_id => '') $$,
  '22023', 'client_message_id must be 1 to 128 characters',
  'An empty client_message_id is refused.'
);
select throws_ok(
  $$ select public.send_chat_message('5e000000-0000-4000-8000-000000000001', 'Hello', client_message_id => repeat('k', 129)) $$,
  '22023', 'client_message_id must be 1 to 128 characters',
  'A client_message_id longer than 128 characters is refused.'
);

-- ---------------------------------------------------------------- idempotent retries
select results_eq(
  $$ select
       (public.send_chat_message('5e000000-0000-4000-8000-000000000001', 'Sent once', client_message_id => 'retry-1')).id
     = (public.send_chat_message('5e000000-0000-4000-8000-000000000001', 'Sent once', client_message_id => 'retry-1')).id $$,
  $$ values (true) $$,
  'A retried send with the same client_message_id returns the row the first attempt stored.'
);
select results_eq(
  $$ select m.content from public.send_chat_message('5e000000-0000-4000-8000-000000000001', 'Changed my mind',
       client_message_id => 'retry-1') as m $$,
  $$ values ('Sent once'::text) $$,
  'A retry never rewrites the stored message.'
);
select results_eq(
  $$ select count(*)::int from public.chat_messages where client_message_id = 'retry-1' $$,
  array[1],
  'Three sends with one client_message_id stored one message.'
);
reset role;
select tests.authenticate_as('reader');
select results_eq(
  $$ select m.sender_id, m.content from public.send_chat_message('5e000000-0000-4000-8000-000000000001', 'The reader''s own',
       client_message_id => 'retry-1') as m $$,
  format($$ values (%L::uuid, 'The reader''s own'::text) $$, :'reader'),
  'The same client_message_id from another sender is another message.'
);

-- ---------------------------------------------------------------- file messages
reset role;
select tests.authenticate_as('client');
select results_eq(
  format($$ select m.type, m.content, m.metadata ->> 'storage_path'
     from public.send_chat_message('5e000000-0000-4000-8000-000000000001', type => 'audio',
       metadata => '{"storage_path": "5e000000-0000-4000-8000-000000000001/%s/voice.ogg", "duration_ms": 4200}') as m $$, :'client'),
  format($$ values ('audio'::text, null::text,
             '5e000000-0000-4000-8000-000000000001/%s/voice.ogg'::text) $$, :'client'),
  'The client sends a voice message pointing at a file they uploaded to the session.'
);
select throws_ok(
  $$ select public.send_chat_message('5e000000-0000-4000-8000-000000000001', type => 'audio', metadata => '{"duration_ms": 4200}') $$,
  '22023', 'audio messages need metadata.storage_path',
  'A voice message without a storage_path is refused.'
);
select throws_ok(
  format($$ select public.send_chat_message('5e000000-0000-4000-8000-000000000001', type => 'image',
       metadata => '{"storage_path": "5e000000-0000-4000-8000-000000000001/%s/photo.png"}') $$, :'reader'),
  '22023', 'metadata.storage_path is not a file you uploaded to this session',
  'The client cannot send the reader''s upload as their own.'
);
select throws_ok(
  format($$ select public.send_chat_message('5e000000-0000-4000-8000-000000000001', type => 'file',
       metadata => '{"storage_path": "5e000000-0000-4000-8000-000000000001/%s/missing.pdf"}') $$, :'client'),
  '22023', 'metadata.storage_path is not a file you uploaded to this session',
  'A file message must point at a file that exists.'
);
select throws_ok(
  format($$ select public.send_chat_message('5e000000-0000-4000-8000-000000000001', type => 'file',
       metadata => '{"storage_path": "5e000000-0000-4000-8000-000000000003/%s/doc.pdf"}') $$, :'outsider'),
  '22023', 'metadata.storage_path is not a file you uploaded to this session',
  'A file message cannot point at a file of another session.'
);

select * from finish();
rollback;
