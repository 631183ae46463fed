-- storage.objects in bucket chat-files: participants read {session}/..., upload to {session}/{own id}/....
begin;
set local search_path = extensions, public;
select plan(31);

-- Fixtures: the chat fixture of the test helpers (tests.create_chat_fixture).
select tests.create_chat_fixture();

-- Their ids as psql variables (:'client'), for statements run under another role.
select
  tests.uid('client') as client,
  tests.uid('reader') as reader,
  tests.uid('outsider') as outsider,
  tests.uid('admin') as admin
\gset

select tests.create_affected_rows();

-- Objects: the client's and the reader's files in S1, the client's file in the closed S2,
-- the outsider's in S3, a chat-files object whose first folder is not a UUID, and an object
-- of another bucket under S1's name.
insert into storage.buckets (id, name, public) values ('avatars', 'avatars', false);
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
  'chat-files', '5e000000-0000-4000-8000-000000000002/' || :'client' || '/old.pdf',
  :'client'
),
(
  'chat-files', '5e000000-0000-4000-8000-000000000003/' || :'outsider' || '/doc.pdf',
  :'outsider'
),
('chat-files', 'not-a-uuid/' || :'client' || '/stray.txt', null),
(
  'avatars', '5e000000-0000-4000-8000-000000000001/' || :'client' || '/me.png',
  :'client'
);

-- ---------------------------------------------------------------- anon
reset role;
select tests.clear_authentication();
select is_empty(
  $$ select name from storage.objects $$,
  'An anonymous caller sees no stored object.'
);
select throws_ok(
  format($$ insert into storage.objects (bucket_id, name)
     values ('chat-files', '5e000000-0000-4000-8000-000000000001/%s/anon.txt') $$, :'client'),
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
select tests.authenticate_as('reader');
select results_eq(
  $$ select name from storage.objects order by name $$,
  format($$ values ('5e000000-0000-4000-8000-000000000001/%s/voice.ogg'::text),
            ('5e000000-0000-4000-8000-000000000001/%s/photo.png'),
            ('5e000000-0000-4000-8000-000000000002/%s/old.pdf') $$, :'client', :'reader', :'client'),
  'The reader participant reads every chat file of their sessions, whoever uploaded it, and nothing else.'
);
select lives_ok(
  format($$ insert into storage.objects (bucket_id, name, owner)
     values ('chat-files', '5e000000-0000-4000-8000-000000000001/%s/chart.pdf',
             %L) $$, :'reader', :'reader'),
  'The reader participant can upload under {session}/{own id}/ of an active session.'
);

-- ---------------------------------------------------------------- client participant
reset role;
select tests.authenticate_as('client');
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
  format($$ insert into storage.objects (bucket_id, name, owner)
     values ('chat-files', '5e000000-0000-4000-8000-000000000001/%s/second.ogg',
             %L) $$, :'client', :'client'),
  'The client participant can upload under {session}/{own id}/ of an active session.'
);
select throws_ok(
  format($$ insert into storage.objects (bucket_id, name)
     values ('chat-files', '5e000000-0000-4000-8000-000000000001/%s/forged.png') $$, :'reader'),
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
  format($$ insert into storage.objects (bucket_id, name)
     values ('chat-files', '5e000000-0000-4000-8000-000000000002/%s/late.pdf') $$, :'client'),
  '42501', 'new row violates row-level security policy for table "objects"',
  'The client cannot upload to a closed session.'
);
select throws_ok(
  format($$ insert into storage.objects (bucket_id, name)
     values ('chat-files', '5e000000-0000-4000-8000-000000000003/%s/x.png') $$, :'client'),
  '42501', 'new row violates row-level security policy for table "objects"',
  'The client cannot upload to a session they do not take part in.'
);
select throws_ok(
  format($$ insert into storage.objects (bucket_id, name)
     values ('chat-files', 'not-a-uuid/%s/x.png') $$, :'client'),
  '42501', 'new row violates row-level security policy for table "objects"',
  'An upload whose first folder is not a UUID is refused by the policy, not by a cast error.'
);
select throws_ok(
  format($$ insert into storage.objects (bucket_id, name)
     values ('chat-files', '5e000000-0000-4000-8000-000000000001x/%s/x.png') $$, :'client'),
  '42501', 'new row violates row-level security policy for table "objects"',
  'An upload whose first folder only starts with a session id is refused.'
);
select is(
  pg_temp.affected_rows(
    format($$ update storage.objects set metadata = '{"size": 1}'
       where name = '5e000000-0000-4000-8000-000000000001/%s/voice.ogg' $$, :'client')
  ),
  0,
  'Chat files are immutable: not even their uploader can update one (no row is touched).'
);
select is(
  pg_temp.affected_rows(
    format($$ delete from storage.objects
       where name = '5e000000-0000-4000-8000-000000000001/%s/photo.png' $$, :'reader')
  ),
  0,
  'The client cannot delete the reader''s file (no row is touched).'
);
select is(
  pg_temp.affected_rows(
    format($$ delete from storage.objects
       where name = '5e000000-0000-4000-8000-000000000001/%s/voice.ogg' $$, :'client')
  ),
  1,
  'The client can delete their own file.'
);
select is(
  pg_temp.affected_rows(
    format($$ delete from storage.objects
       where name = '5e000000-0000-4000-8000-000000000002/%s/old.pdf' $$, :'client')
  ),
  1,
  'The client can delete their own file of a closed session.'
);

-- ---------------------------------------------------------------- outsider
reset role;
select tests.authenticate_as('outsider');
select results_eq(
  $$ select name from storage.objects $$,
  format($$ values ('5e000000-0000-4000-8000-000000000003/%s/doc.pdf'::text) $$, :'outsider'),
  'The outsider reads only the files of their own session.'
);
select is_empty(
  $$ select name from storage.objects where name like '5e000000-0000-4000-8000-000000000001/%' $$,
  'The outsider sees nothing of a session they do not take part in.'
);
select throws_ok(
  format($$ insert into storage.objects (bucket_id, name)
     values ('chat-files', '5e000000-0000-4000-8000-000000000001/%s/x.png') $$, :'outsider'),
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
select tests.authenticate_as('admin');
select is_empty(
  $$ select name from storage.objects $$,
  'The admin reads no chat file of a session they do not take part in.'
);
select throws_ok(
  format($$ insert into storage.objects (bucket_id, name)
     values ('chat-files', '5e000000-0000-4000-8000-000000000001/%s/x.png') $$, :'admin'),
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
select tests.authenticate_as('forger');
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
  format($$ insert into storage.objects (bucket_id, name)
     values ('chat-files', '5e000000-0000-4000-8000-000000000002/%s/transcript.txt') $$, :'admin'),
  'The service role can store a file anywhere, a closed session included.'
);
select is(
  pg_temp.affected_rows($$ delete from storage.objects where name like 'not-a-uuid/%' $$),
  1,
  'The service role can delete any chat file.'
);

select * from finish();
rollback;
