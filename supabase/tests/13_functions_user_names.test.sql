-- chat_user_names: display names of users who share a session with the caller, and nothing else.
begin;
set local search_path = extensions, public;
select plan(8);

-- Fixtures: the chat fixture of the test helpers (tests.create_chat_fixture).
select tests.create_chat_fixture();

-- A user with a display name (padded) who shares S8 with the client, and one whose name is
-- far too long and who shares nothing.
do $$
begin
  perform tests.create_supabase_user('ada', 'ada@chat.test', '{"role": "reader"}',
                                     '{"full_name": "  Ada Lovelace  "}');
  perform tests.create_supabase_user('long', 'long@chat.test', '{}',
                                     jsonb_build_object('name', repeat('n', 150)));
  insert into public.chat_sessions (id, participants, type, created_by)
  values ('5e000000-0000-4000-8000-000000000008',
          array[tests.uid('client'), tests.uid('ada')]::uuid [],
          'support', tests.uid('client'));
end
$$;

-- Their ids as psql variables (:'client'), for statements run under another role.
select
  tests.uid('client') as client,
  tests.uid('reader') as reader,
  tests.uid('outsider') as outsider,
  tests.uid('other_reader') as other_reader,
  tests.uid('ada') as ada,
  tests.uid('long') as long
\gset

select is(
  pg_get_function_result('public.chat_user_names(uuid[])'::regprocedure),
  'TABLE(user_id uuid, name text)',
  'chat_user_names returns ids and display names only: no email address, no metadata.'
);

reset role;
select tests.clear_authentication();
select throws_ok(
  format($$ select * from public.chat_user_names(array[%L]::uuid []) $$, :'client'),
  '42501', 'permission denied for function chat_user_names',
  'An anonymous caller cannot look up names.'
);

reset role;
select tests.authenticate_with_claims('{"role": "authenticated"}');
select is_empty(
  format($$ select * from public.chat_user_names(array[%L]::uuid []) $$, :'client'),
  'A token without a subject learns no name.'
);

reset role;
select tests.authenticate_as('client');
select results_eq(
  format($$ select user_id, name from public.chat_user_names(array[
       %L, %L,
       %L, %L,
       %L, '0c000000-0000-4000-8000-0000000000ff']::uuid [])
     order by user_id $$, :'client', :'reader', :'outsider', :'ada', :'long'),
  format($$ values (%L::uuid, 'client'::text),
            (%L::uuid, 'reader'::text),
            (%L::uuid, 'Ada Lovelace'::text) $$, :'client', :'reader', :'ada'),
  'The client learns their own name and those of the users they share a session with, and no other.'
);

reset role;
select tests.authenticate_as('outsider');
select results_eq(
  format($$ select user_id from public.chat_user_names(array[
       %L, %L,
       %L, %L]::uuid [])
     order by user_id $$, :'client', :'reader', :'outsider', :'other_reader'),
  format($$ values (%L::uuid), (%L::uuid) $$, :'outsider', :'other_reader'),
  'The outsider learns the names in their own session only, not the client''s or the reader''s.'
);

reset role;
select tests.authenticate_as('admin');
select is_empty(
  format($$ select * from public.chat_user_names(array[%L, %L]::uuid []) $$, :'client', :'reader'),
  'The admin learns no name of users they share no session with.'
);

reset role;
select tests.authenticate_as('forger');
select is_empty(
  format($$ select * from public.chat_user_names(array[%L]::uuid []) $$, :'client'),
  'A user whose user_metadata says admin learns no name of others.'
);

reset role;
select tests.authenticate_as_service_role();
select results_eq(
  format($$ select user_id, char_length(name) from public.chat_user_names(array[
       %L, %L]::uuid [])
     order by user_id $$, :'outsider', :'long'),
  format($$ values (%L::uuid, 8), (%L::uuid, 100) $$, :'outsider', :'long'),
  'The service role learns any user''s name; a name is at most 100 characters.'
);

select * from finish();
rollback;
