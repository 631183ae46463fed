-- Direct writes (supabase-js to PostgREST) keep the rules of the SQL functions: file
-- messages reference the sender's own object in that session and carry the object's size
-- and type; metadata.url is never stored; read cursors take their message's position and
-- never move backwards.
begin;
set local search_path = extensions, public;
select plan(7);

do $$
begin
  perform tests.create_supabase_user('client', 'client@chat.test', '{"role": "client"}');
  perform tests.create_supabase_user('reader', 'reader@chat.test', '{"role": "reader"}');
  perform tests.create_supabase_user('outsider', 'outsider@chat.test', '{"role": "client"}');
  insert into public.chat_sessions (id, participants, type, created_by)
  values
  (
    '5e000000-0000-4000-8000-000000000001',
    array[tests.uid('client'), tests.uid('reader')]::uuid[],
    'support', tests.uid('client')
  ),
  (
    '5e000000-0000-4000-8000-000000000002',
    array[tests.uid('outsider')]::uuid[],
    'support', tests.uid('outsider')
  );
  insert into storage.objects (bucket_id, name, owner_id, metadata)
  values (
    'chat-files',
    '5e000000-0000-4000-8000-000000000001/' || tests.uid('client') || '/a-photo.png',
    tests.uid('client'),
    '{"mimetype": "image/png", "size": 2048}'
  );
  insert into public.chat_messages (id, session_id, sender_id, content, created_at)
  values
  (
    '3e000000-0000-4000-8000-000000000001', '5e000000-0000-4000-8000-000000000001',
    tests.uid('reader'), 'first', now() - interval '2 minutes'
  ),
  (
    '3e000000-0000-4000-8000-000000000002', '5e000000-0000-4000-8000-000000000001',
    tests.uid('reader'), 'second', now() - interval '1 minute'
  );
end
$$;

-- Their ids as psql variables (:'client'), for statements run under another role.
select
  tests.uid('client') as client,
  tests.uid('outsider') as outsider
\gset

-- The outsider points a message of their own session at the client's file.
reset role;
select tests.authenticate_as('outsider');
select throws_ok(
  format($$ insert into public.chat_messages (session_id, sender_id, type, metadata)
     values ('5e000000-0000-4000-8000-000000000002', %L,
             'image', jsonb_build_object('storage_path',
             '5e000000-0000-4000-8000-000000000001/%s/a-photo.png')) $$, :'outsider', :'client'),
  '22023',
  'metadata.storage_path is not a file you uploaded to this session',
  'A direct insert cannot reference a file of another session'
);

reset role;
select tests.authenticate_as('client');
insert into public.chat_messages (id, session_id, sender_id, type, metadata)
values (
  '3e000000-0000-4000-8000-000000000003', '5e000000-0000-4000-8000-000000000001',
  :'client', 'image',
  jsonb_build_object(
    'storage_path',
    '5e000000-0000-4000-8000-000000000001/' || :'client' || '/a-photo.png',
    'mime_type', 'application/pdf', 'size_bytes', 1, 'url', 'https://evil.example/x'
  )
);

select is(
  (
    select metadata ->> 'mime_type' || ' ' || (metadata ->> 'size_bytes')
    from public.chat_messages
    where id = '3e000000-0000-4000-8000-000000000003'
  ),
  'image/png 2048',
  'A file message carries the stored object''s type and size, not the client''s'
);

select ok(
  (
    select not(metadata ? 'url') from public.chat_messages
    where id = '3e000000-0000-4000-8000-000000000003'
  ),
  'metadata.url is never stored (the server signs links when it reads messages out)'
);

insert into public.chat_messages (id, session_id, sender_id, content, metadata)
values (
  '3e000000-0000-4000-8000-000000000004', '5e000000-0000-4000-8000-000000000001',
  :'client', 'look', '{"url": "https://evil.example/y"}'
);

select ok(
  (
    select not(metadata ? 'url') from public.chat_messages
    where id = '3e000000-0000-4000-8000-000000000004'
  ),
  'A text message cannot carry a url either'
);

-- Read cursors.
insert into public.chat_read_state (
  session_id, user_id, last_read_message_id, last_read_at, last_read_seq
)
values (
  '5e000000-0000-4000-8000-000000000001', :'client',
  '3e000000-0000-4000-8000-000000000002', '2100-01-01', 999999999
);

select is(
  (
    select last_read_seq from public.chat_read_state
    where session_id = '5e000000-0000-4000-8000-000000000001'
      and user_id = :'client'
  ),
  (
    select seq from public.chat_messages
    where id = '3e000000-0000-4000-8000-000000000002'
  ),
  'A direct cursor write takes the position of its message, not the client''s numbers'
);

select throws_ok(
  format($$ update public.chat_read_state
     set last_read_message_id = '3e000000-0000-4000-8000-000000000001'
     where session_id = '5e000000-0000-4000-8000-000000000001'
       and user_id = %L $$, :'client'),
  '22023',
  'a read cursor cannot move backwards',
  'A read cursor cannot be moved backwards directly'
);

select is(
  public.mark_chat_messages_read(
    '5e000000-0000-4000-8000-000000000001', '3e000000-0000-4000-8000-000000000001'
  ),
  0,
  'Marking an earlier message read through the function is a no-op, not an error'
);

select * from finish();
rollback;
