-- Every column change of every chat table and of chat-files objects is audited, whoever
-- makes it (the service role and the owner included); the system's own session touch is
-- not; a message's sender cannot be changed or emptied by an update.
begin;
set local search_path = extensions, public;
select plan(13);

do $$
begin
  perform tests.create_supabase_user('client', 'client@chat.test', '{"role": "client"}');
  perform tests.create_supabase_user('reader', 'reader@chat.test', '{"role": "reader"}');
  perform tests.create_supabase_user('leaving', 'leaving@chat.test', '{"role": "client"}');

  insert into public.chat_sessions (id, participants, type, created_by)
  values (
    '5e000000-0000-4000-8000-000000000001',
    array[
      tests.uid('client'), tests.uid('reader'),
      tests.uid('leaving')
    ]::uuid [],
    'support', tests.uid('client')
  );
  insert into public.chat_messages (id, session_id, sender_id, content)
  values
  ('3e000000-0000-4000-8000-000000000001', '5e000000-0000-4000-8000-000000000001',
   tests.uid('client'), 'Hello'),
  ('3e000000-0000-4000-8000-000000000009', '5e000000-0000-4000-8000-000000000001',
   tests.uid('leaving'), 'Goodbye');
  insert into storage.objects (bucket_id, name, owner, owner_id, metadata)
  values (
    'chat-files',
    '5e000000-0000-4000-8000-000000000001/' || tests.uid('client') || '/note.txt',
    tests.uid('client'), tests.uid('client'),
    '{"size": 5, "mimetype": "text/plain"}'
  );
end
$$;

-- Their ids as psql variables (:'client'), for statements run under another role.
select
  tests.uid('client') as client,
  tests.uid('reader') as reader,
  tests.uid('leaving') as leaving
\gset

create function pg_temp.audited(what text) returns jsonb
language sql
as $$
  select a.details from public.chat_audit_logs as a
  where a.action = what order by a.id desc limit 1
$$;

-- The system's touch of last_message_at is not a change worth a row.
select is(
  (
    select count(*)::integer from public.chat_audit_logs
    where action like 'session.%' and action <> 'session.created'
  ),
  0,
  'A message moving its session''s last_message_at writes no session audit row.'
);

-- The service role rewriting a closed session's closed_at.
reset role;
select tests.authenticate_as_service_role();
update public.chat_sessions set status = 'closed'
where id = '5e000000-0000-4000-8000-000000000001';
update public.chat_sessions set closed_at = '2001-01-01'
where id = '5e000000-0000-4000-8000-000000000001';
reset role;
select set_config('request.jwt.claims', '', true);
select is(
  (pg_temp.audited('session.updated') -> 'closed_at' ->> 'from')::timestamptz,
  (
    select a.created_at from public.chat_audit_logs as a
    where a.action = 'session.closed'
  ),
  'A session''s closed_at rewritten by the service role is audited with its old value...'
);
select ok(
  (pg_temp.audited('session.updated') -> 'closed_at' ->> 'to') like '2001-01-01%',
  '... and its new value.'
);
select is(
  (
    select actor_role from public.chat_audit_logs
    where action = 'session.updated'
    order by id desc limit 1
  ),
  'service_role',
  'The audit row names the service role.'
);

-- A forged touch mark does not hide another change.
select set_config('chat.session_touch', 'on', true);
update public.chat_sessions set title = 'Renamed', last_message_at = now()
where id = '5e000000-0000-4000-8000-000000000001';
select set_config('chat.session_touch', 'off', true);
select is(
  pg_temp.audited('session.updated') -> 'title' ->> 'to',
  'Renamed',
  'A title change made under the touch mark is audited all the same.'
);

-- Messages: any column; content by its lengths only.
update public.chat_messages set metadata = '{"pinned": true}', content = 'Hello again'
where id = '3e000000-0000-4000-8000-000000000001';
select is(
  pg_temp.audited('message.updated') - 'via',
  jsonb_build_object(
    'metadata', jsonb_build_object('from', '{}'::jsonb, 'to', '{"pinned": true}'::jsonb),
    'content', jsonb_build_object('from_length', 5, 'to_length', 11)
  ),
  'An edited message is audited column by column, its content by length only.'
);
select throws_ok(
  $$ update public.chat_messages set sender_id = null where id = '3e000000-0000-4000-8000-000000000001' $$,
  '42501', 'chat message id, seq, session_id, sender_id and created_at cannot change',
  'Not even the owner can empty a message''s sender with an update.'
);

-- Deleting the auth user erases them: the sender of their messages is emptied, and the
-- erasure is audited once, without saying whose they were.
delete from auth.users
where id = :'leaving';
select is(
  (
    select sender_id from public.chat_messages
    where id = '3e000000-0000-4000-8000-000000000009'
  ),
  null,
  'Deleting the user empties the sender of their messages...'
);
select is(
  (
    select count(*)::integer from public.chat_audit_logs
    where action = 'user.erased'
      and details::text not like '%' || :'leaving' || '%'
  ),
  1,
  '... and one audit row records the erasure, without the user''s id.'
);

-- chat-files objects: metadata and owner.
update storage.objects
set metadata = '{"size": 5, "mimetype": "application/pdf"}', owner = :'reader'
where name = '5e000000-0000-4000-8000-000000000001/' || :'client' || '/note.txt';
select is(
  pg_temp.audited('file.updated') -> 'metadata' -> 'to' ->> 'mimetype',
  'application/pdf',
  'A stored object''s mimetype change is audited...'
);
select is(
  pg_temp.audited('file.updated') -> 'owner' ->> 'to',
  :'reader',
  '... and so is its new owner.'
);
update storage.objects set last_accessed_at = now() + interval '1 minute'
where name = '5e000000-0000-4000-8000-000000000001/' || :'client' || '/note.txt';
select is(
  (
    select count(*)::integer from public.chat_audit_logs
    where action = 'file.updated'
  ),
  1,
  'Storage''s own bookkeeping (last_accessed_at) is not audited.'
);

-- Delivery cursors too.
reset role;
select tests.authenticate_as('reader');
select public.mark_chat_messages_delivered('5e000000-0000-4000-8000-000000000001', '3e000000-0000-4000-8000-000000000001');
reset role;
select set_config('request.jwt.claims', '', true);
select is(
  (
    select actor_id from public.chat_audit_logs
    where action = 'delivery_state.advanced'
  ),
  :'reader'::uuid,
  'A delivery cursor set by the reader is audited with the reader as actor.'
);

select * from finish();
rollback;
