-- Uploads by the hosted path (browser -> Storage -> send_chat_message with metadata.storage_path):
-- a file message is accepted only for an object that exists under that session and that sender.
begin;
set local search_path = extensions, public;
select plan(16);

-- Fixtures (as postgres): a client and a reader sharing an active session (S1) and a closed
-- one (S3); the client and an outsider sharing another active session (S2).
do $$
begin
  perform tests.create_supabase_user('client', 'up-client@chat.test', '{"role": "client"}');
  perform tests.create_supabase_user('reader', 'up-reader@chat.test', '{"role": "reader"}');
  perform tests.create_supabase_user('outsider', 'up-outsider@chat.test', '{"role": "client"}');

  insert into public.chat_sessions (id, participants, type, created_by, status, closed_at)
  values
  ('5f000000-0000-4000-8000-000000000001',
   array[tests.uid('client'), tests.uid('reader')]::uuid [],
   'support', tests.uid('client'), 'active', null),
  ('5f000000-0000-4000-8000-000000000002',
   array[tests.uid('client'), tests.uid('outsider')]::uuid [],
   'support', tests.uid('client'), 'active', null),
  ('5f000000-0000-4000-8000-000000000003',
   array[tests.uid('client'), tests.uid('reader')]::uuid [],
   'support', tests.uid('client'), 'closed', now() - interval '1 hour');
end
$$;

-- Their ids as psql variables (:'client'), for statements run under another role.
select
  tests.uid('client') as client,
  tests.uid('outsider') as outsider
\gset

select tests.create_affected_rows();

-- ---------------------------------------------------------------- the client uploads, as Storage does
reset role;
select tests.authenticate_as('client');
select lives_ok(
  format($$ insert into storage.objects (bucket_id, name, owner, owner_id, metadata)
     values ('chat-files',
             '5f000000-0000-4000-8000-000000000001/%s/voice.webm',
             %L, %L,
             '{"mimetype": "audio/webm", "size": 2048}') $$, :'client', :'client', :'client'),
  'A participant uploads a voice note under {session}/{own id}/ of an active session.'
);
select lives_ok(
  format($$ insert into storage.objects (bucket_id, name, owner)
     values ('chat-files',
             '5f000000-0000-4000-8000-000000000002/%s/doc.pdf',
             %L) $$, :'client', :'client'),
  'The same user uploads a document to another session they take part in.'
);
select throws_ok(
  format($$ insert into storage.objects (bucket_id, name)
     values ('chat-files', '5f000000-0000-4000-8000-000000000003/%s/late.ogg') $$, :'client'),
  '42501', 'new row violates row-level security policy for table "objects"',
  'Nobody uploads to a closed session.'
);
select results_eq(
  format($$ select m.type, m.sender_id, m.metadata ->> 'mime_type'
     from public.send_chat_message('5f000000-0000-4000-8000-000000000001', type => 'audio',
       metadata => '{"storage_path": "5f000000-0000-4000-8000-000000000001/%s/voice.webm",
                     "mime_type": "audio/webm", "duration_ms": 1800}') as m $$, :'client'),
  format($$ values ('audio'::text, %L::uuid, 'audio/webm'::text) $$, :'client'),
  'The client sends the uploaded voice note as an audio message.'
);
select throws_ok(
  format($$ select public.send_chat_message('5f000000-0000-4000-8000-000000000002', type => 'audio',
       metadata => '{"storage_path": "5f000000-0000-4000-8000-000000000001/%s/voice.webm"}') $$, :'client'),
  '22023', 'metadata.storage_path is not a file you uploaded to this session',
  'An object of one session cannot be sent into another, even by its uploader.'
);
select throws_ok(
  format($$ select public.send_chat_message('5f000000-0000-4000-8000-000000000001', type => 'file',
       metadata => '{"storage_path": "5f000000-0000-4000-8000-000000000002/%s/doc.pdf"}') $$, :'client'),
  '22023', 'metadata.storage_path is not a file you uploaded to this session',
  'Nor can an object of another session be sent here.'
);
select throws_ok(
  $$ select public.send_chat_message('5f000000-0000-4000-8000-000000000001', type => 'image',
       metadata => '{"storage_path": "5f000000-0000-4000-8000-000000000001/photo.png"}') $$,
  '22023', 'metadata.storage_path is not a file you uploaded to this session',
  'A path outside any sender folder is refused.'
);
select throws_ok(
  $$ select public.send_chat_message('5f000000-0000-4000-8000-000000000001', type => 'file',
       metadata => '{"storage_path": 42}') $$,
  '22023', 'metadata.storage_path is not a file you uploaded to this session',
  'A storage_path that is not a path is refused.'
);

-- ---------------------------------------------------------------- the reader
reset role;
select tests.authenticate_as('reader');
select results_eq(
  $$ select count(*)::int from storage.objects
     where name like '5f000000-0000-4000-8000-000000000001/%' $$,
  array[1],
  'The other participant can read the voice note the message points at.'
);
select throws_ok(
  format($$ select public.send_chat_message('5f000000-0000-4000-8000-000000000001', type => 'audio',
       metadata => '{"storage_path": "5f000000-0000-4000-8000-000000000001/%s/voice.webm"}') $$, :'client'),
  '22023', 'metadata.storage_path is not a file you uploaded to this session',
  'The other participant cannot send the client''s upload as their own.'
);
select throws_ok(
  format($$ insert into storage.objects (bucket_id, name)
     values ('chat-files', '5f000000-0000-4000-8000-000000000001/%s/forged.webm') $$, :'client'),
  '42501', 'new row violates row-level security policy for table "objects"',
  'Nor can they upload into the client''s folder to make it look so.'
);

-- ---------------------------------------------------------------- the outsider
reset role;
select tests.authenticate_as('outsider');
select is_empty(
  $$ select name from storage.objects where name like '5f000000-0000-4000-8000-000000000001/%' $$,
  'An outsider sees no file of a session they do not take part in.'
);
select throws_ok(
  format($$ select public.send_chat_message('5f000000-0000-4000-8000-000000000001', type => 'audio',
       metadata => '{"storage_path": "5f000000-0000-4000-8000-000000000001/%s/x.webm"}') $$, :'outsider'),
  'P0002', 'chat session 5f000000-0000-4000-8000-000000000001 not found',
  'An outsider cannot send into the session at all.'
);

-- ---------------------------------------------------------------- a removed object
reset role;
select tests.authenticate_as('client');
select is(
  pg_temp.affected_rows(
    format($$ delete from storage.objects
       where name = '5f000000-0000-4000-8000-000000000001/%s/voice.webm' $$, :'client')
  ),
  1,
  'The uploader deletes their own object (as the upload worker does when its message fails).'
);
select throws_ok(
  format($$ select public.send_chat_message('5f000000-0000-4000-8000-000000000001', type => 'audio',
       metadata => '{"storage_path": "5f000000-0000-4000-8000-000000000001/%s/voice.webm"}') $$, :'client'),
  '22023', 'metadata.storage_path is not a file you uploaded to this session',
  'Once the object is gone, no new message can point at it.'
);
select results_eq(
  $$ select count(*)::int from public.chat_messages
     where session_id = '5f000000-0000-4000-8000-000000000001' and type = 'audio' $$,
  array[1],
  'Only the one accepted voice message exists.'
);

select * from finish();
rollback;
