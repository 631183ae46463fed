-- storage.objects in bucket chat-files: participants read {session}/..., upload to {session}/{own id}/....
begin;
set local search_path = extensions, public;
select plan(31);

-- Fixtures (as postgres): a client and a reader who share an active session (S1) and a
-- closed one (S2); an outsider in a session of their own (S3); an admin (app_metadata) who
-- takes part in neither; a user whose user_metadata (editable by the user) claims admin.
do $$
begin
  perform tests.create_supabase_user('0c000000-0000-4000-8000-000000000001', 'client@chat.test', '{"role": "client"}', '{}');
  perform tests.create_supabase_user('0c000000-0000-4000-8000-000000000002', 'reader@chat.test', '{"role": "reader"}', '{}');
  perform tests.create_supabase_user('0c000000-0000-4000-8000-000000000003', 'outsider@chat.test', '{"role": "client"}', '{}');
  perform tests.create_supabase_user('0c000000-0000-4000-8000-000000000004', 'admin@chat.test', '{"role": "admin"}', '{}');
  perform tests.create_supabase_user('0c000000-0000-4000-8000-000000000005', 'forger@chat.test', '{"role": "client"}', '{"role": "admin"}');
  perform tests.create_supabase_user('0c000000-0000-4000-8000-000000000006', 'other-reader@chat.test', '{"role": "reader"}', '{}');

  insert into public.chat_sessions (id, participants, type, booking_id, title, created_by, status, closed_at)
  values
  ('5e000000-0000-4000-8000-000000000001',
   array['0c000000-0000-4000-8000-000000000001', '0c000000-0000-4000-8000-000000000002']::uuid [],
   'booking', 'b0000000-0000-4000-8000-000000000001', 'Active consultation',
   '0c000000-0000-4000-8000-000000000001', 'active', null),
  ('5e000000-0000-4000-8000-000000000002',
   array['0c000000-0000-4000-8000-000000000001', '0c000000-0000-4000-8000-000000000002']::uuid [],
   'support', null, 'Closed support chat',
   '0c000000-0000-4000-8000-000000000001', 'closed', now() - interval '1 hour'),
  ('5e000000-0000-4000-8000-000000000003',
   array['0c000000-0000-4000-8000-000000000003', '0c000000-0000-4000-8000-000000000006']::uuid [],
   'booking', 'b0000000-0000-4000-8000-000000000003', 'Outsider consultation',
   '0c000000-0000-4000-8000-000000000003', 'active', null);

  insert into public.chat_messages (id, session_id, sender_id, content, created_at)
  values
  ('3e000000-0000-4000-8000-000000000001', '5e000000-0000-4000-8000-000000000001',
   '0c000000-0000-4000-8000-000000000001', 'Hello from the client', now() - interval '3 minutes'),
  ('3e000000-0000-4000-8000-000000000002', '5e000000-0000-4000-8000-000000000001',
   '0c000000-0000-4000-8000-000000000002', 'Hello from the reader', now() - interval '2 minutes'),
  ('3e000000-0000-4000-8000-000000000003', '5e000000-0000-4000-8000-000000000002',
   '0c000000-0000-4000-8000-000000000001', 'Said before closing', now() - interval '2 hours'),
  ('3e000000-0000-4000-8000-000000000004', '5e000000-0000-4000-8000-000000000003',
   '0c000000-0000-4000-8000-000000000003', 'Hello from the outsider', now() - interval '1 minute');
end
$$;

-- Rows affected by a statement run as the current role (RLS filters silently).
create function pg_temp.affected_rows(query text) returns integer
language plpgsql
as $$
declare
  _n integer;
begin
  execute query;
  get diagnostics _n = row_count;
  return _n;
end
$$;

-- Objects: the client's and the reader's files in S1, the client's file in the closed S2,
-- the outsider's in S3, a chat-files object whose first folder is not a UUID, and an object
-- of another bucket under S1's name.
insert into storage.buckets (id, name, public) values ('avatars', 'avatars', false);
insert into storage.objects (bucket_id, name, owner)
values
(
  'chat-files', '5e000000-0000-4000-8000-000000000001/0c000000-0000-4000-8000-000000000001/voice.ogg',
  '0c000000-0000-4000-8000-000000000001'
),
(
  'chat-files', '5e000000-0000-4000-8000-000000000001/0c000000-0000-4000-8000-000000000002/photo.png',
  '0c000000-0000-4000-8000-000000000002'
),
(
  'chat-files', '5e000000-0000-4000-8000-000000000002/0c000000-0000-4000-8000-000000000001/old.pdf',
  '0c000000-0000-4000-8000-000000000001'
),
(
  'chat-files', '5e000000-0000-4000-8000-000000000003/0c000000-0000-4000-8000-000000000003/doc.pdf',
  '0c000000-0000-4000-8000-000000000003'
),
('chat-files', 'not-a-uuid/0c000000-0000-4000-8000-000000000001/stray.txt', null),
(
  'avatars', '5e000000-0000-4000-8000-000000000001/0c000000-0000-4000-8000-000000000001/me.png',
  '0c000000-0000-4000-8000-000000000001'
);

-- ---------------------------------------------------------------- anon
reset role;
select tests.clear_authentication();
select is_empty(
  $$ select name from storage.objects $$,
  'An anonymous caller sees no stored object.'
);
select throws_ok(
  $$ insert into storage.objects (bucket_id, name)
     values ('chat-files', '5e000000-0000-4000-8000-000000000001/0c000000-0000-4000-8000-000000000001/anon.txt') $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'An anonymous caller cannot upload a chat file.'
);
select is(
  pg_temp.affected_rows($$ update storage.objects set metadata = '{}' where bucket_id = 'chat-files' $$),
  0,
  'An anonymous caller cannot update a chat file (no row is touched).'
);
select is(
  pg_temp.affected_rows($$ delete from storage.objects where bucket_id = 'chat-files' $$),
  0,
  'An anonymous caller cannot delete a chat file (no row is touched).'
);

-- ---------------------------------------------------------------- reader participant
reset role;
select tests.authenticate_as('0c000000-0000-4000-8000-000000000002');
select results_eq(
  $$ select name from storage.objects order by name $$,
  $$ values ('5e000000-0000-4000-8000-000000000001/0c000000-0000-4000-8000-000000000001/voice.ogg'::text),
            ('5e000000-0000-4000-8000-000000000001/0c000000-0000-4000-8000-000000000002/photo.png'),
            ('5e000000-0000-4000-8000-000000000002/0c000000-0000-4000-8000-000000000001/old.pdf') $$,
  'The reader participant reads every chat file of their sessions, whoever uploaded it, and nothing else.'
);
select lives_ok(
  $$ insert into storage.objects (bucket_id, name, owner)
     values ('chat-files', '5e000000-0000-4000-8000-000000000001/0c000000-0000-4000-8000-000000000002/chart.pdf',
             '0c000000-0000-4000-8000-000000000002') $$,
  'The reader participant can upload under {session}/{own id}/ of an active session.'
);

-- ---------------------------------------------------------------- client participant
reset role;
select tests.authenticate_as('0c000000-0000-4000-8000-000000000001');
select results_eq(
  $$ select count(*)::int from storage.objects where bucket_id = 'chat-files' $$,
  array[4],
  'The client participant reads the four chat files of their sessions.'
);
select is_empty(
  $$ select name from storage.objects where bucket_id = 'avatars' $$,
  'The chat policies give no access to another bucket, even under a session''s name.'
);
select is_empty(
  $$ select name from storage.objects where name like 'not-a-uuid/%' $$,
  'An object whose first folder is not a UUID is simply not readable (no error).'
);
select lives_ok(
  $$ insert into storage.objects (bucket_id, name, owner)
     values ('chat-files', '5e000000-0000-4000-8000-000000000001/0c000000-0000-4000-8000-000000000001/second.ogg',
             '0c000000-0000-4000-8000-000000000001') $$,
  'The client participant can upload under {session}/{own id}/ of an active session.'
);
select throws_ok(
  $$ insert into storage.objects (bucket_id, name)
     values ('chat-files', '5e000000-0000-4000-8000-000000000001/0c000000-0000-4000-8000-000000000002/forged.png') $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'The client cannot upload into the reader''s folder.'
);
select throws_ok(
  $$ insert into storage.objects (bucket_id, name)
     values ('chat-files', '5e000000-0000-4000-8000-000000000001/loose.png') $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'The client cannot upload directly under the session folder, outside their own.'
);
select throws_ok(
  $$ insert into storage.objects (bucket_id, name)
     values ('chat-files', '5e000000-0000-4000-8000-000000000002/0c000000-0000-4000-8000-000000000001/late.pdf') $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'The client cannot upload to a closed session.'
);
select throws_ok(
  $$ insert into storage.objects (bucket_id, name)
     values ('chat-files', '5e000000-0000-4000-8000-000000000003/0c000000-0000-4000-8000-000000000001/x.png') $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'The client cannot upload to a session they do not take part in.'
);
select throws_ok(
  $$ insert into storage.objects (bucket_id, name)
     values ('chat-files', 'not-a-uuid/0c000000-0000-4000-8000-000000000001/x.png') $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'An upload whose first folder is not a UUID is refused by the policy, not by a cast error.'
);
select throws_ok(
  $$ insert into storage.objects (bucket_id, name)
     values ('chat-files', '5e000000-0000-4000-8000-000000000001x/0c000000-0000-4000-8000-000000000001/x.png') $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'An upload whose first folder only starts with a session id is refused.'
);
select is(
  pg_temp.affected_rows(
    $$ update storage.objects set metadata = '{"size": 1}'
       where name = '5e000000-0000-4000-8000-000000000001/0c000000-0000-4000-8000-000000000001/voice.ogg' $$
  ),
  0,
  'Chat files are immutable: not even their uploader can update one (no row is touched).'
);
select is(
  pg_temp.affected_rows(
    $$ delete from storage.objects
       where name = '5e000000-0000-4000-8000-000000000001/0c000000-0000-4000-8000-000000000002/photo.png' $$
  ),
  0,
  'The client cannot delete the reader''s file (no row is touched).'
);
select is(
  pg_temp.affected_rows(
    $$ delete from storage.objects
       where name = '5e000000-0000-4000-8000-000000000001/0c000000-0000-4000-8000-000000000001/voice.ogg' $$
  ),
  1,
  'The client can delete their own file.'
);
select is(
  pg_temp.affected_rows(
    $$ delete from storage.objects
       where name = '5e000000-0000-4000-8000-000000000002/0c000000-0000-4000-8000-000000000001/old.pdf' $$
  ),
  1,
  'The client can delete their own file of a closed session.'
);

-- ---------------------------------------------------------------- outsider
reset role;
select tests.authenticate_as('0c000000-0000-4000-8000-000000000003');
select results_eq(
  $$ select name from storage.objects $$,
  $$ values ('5e000000-0000-4000-8000-000000000003/0c000000-0000-4000-8000-000000000003/doc.pdf'::text) $$,
  'The outsider reads only the files of their own session.'
);
select is_empty(
  $$ select name from storage.objects where name like '5e000000-0000-4000-8000-000000000001/%' $$,
  'The outsider sees nothing of a session they do not take part in.'
);
select throws_ok(
  $$ insert into storage.objects (bucket_id, name)
     values ('chat-files', '5e000000-0000-4000-8000-000000000001/0c000000-0000-4000-8000-000000000003/x.png') $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'The outsider cannot upload to a session they do not take part in, even under their own id.'
);
select is(
  pg_temp.affected_rows($$ delete from storage.objects where name like '5e000000-0000-4000-8000-000000000001/%' $$),
  0,
  'The outsider cannot delete files of a session they do not take part in (no row is touched).'
);

-- ---------------------------------------------------------------- admin (not a participant)
reset role;
select tests.authenticate_as('0c000000-0000-4000-8000-000000000004');
select is_empty(
  $$ select name from storage.objects $$,
  'The admin reads no chat file of a session they do not take part in.'
);
select throws_ok(
  $$ insert into storage.objects (bucket_id, name)
     values ('chat-files', '5e000000-0000-4000-8000-000000000001/0c000000-0000-4000-8000-000000000004/x.png') $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'The admin cannot upload to a session they do not take part in.'
);
select is(
  pg_temp.affected_rows($$ delete from storage.objects where bucket_id = 'chat-files' $$),
  0,
  'The admin cannot delete chat files (no row is touched).'
);

-- ---------------------------------------------------------------- forged admin claim
reset role;
select tests.authenticate_as('0c000000-0000-4000-8000-000000000005');
select is_empty(
  $$ select name from storage.objects $$,
  'A user whose user_metadata says admin reads no chat file.'
);

-- ---------------------------------------------------------------- service role
reset role;
select tests.authenticate_as_service_role();
select results_eq(
  $$ select count(*)::int from storage.objects
     where bucket_id = 'chat-files' and (name like '5e000000-%' or name like 'not-a-uuid/%') $$,
  array[5],
  'The service role reads every chat file.'
);
select lives_ok(
  $$ insert into storage.objects (bucket_id, name)
     values ('chat-files', '5e000000-0000-4000-8000-000000000002/0c000000-0000-4000-8000-000000000004/transcript.txt') $$,
  'The service role can store a file anywhere, a closed session included.'
);
select is(
  pg_temp.affected_rows($$ delete from storage.objects where name like 'not-a-uuid/%' $$),
  1,
  'The service role can delete any chat file.'
);

select * from finish();
rollback;
