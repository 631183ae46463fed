-- create_chat_session: who may create which session, and every refusal with its SQLSTATE.
begin;
set local search_path = extensions, public;
select plan(23);

-- Fixtures: the chat fixture of the test helpers (tests.create_chat_fixture).
select tests.create_chat_fixture();

-- Their ids as psql variables (:'client'), for statements run under another role.
select
  tests.uid('client') as client,
  tests.uid('reader') as reader,
  tests.uid('admin') as admin,
  tests.uid('forger') as forger,
  tests.uid('other_reader') as other_reader
\gset

-- Forty-nine more users, so that a session of exactly 50 participants can be created.
do $$
begin
  perform tests.create_supabase_user(('0c000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid)
  from generate_series(100, 148) as i;
end
$$;

-- ---------------------------------------------------------------- not authenticated
reset role;
select tests.authenticate_with_claims('{"role": "authenticated"}');
select throws_ok(
  format($$ select public.create_chat_session(array[%L]::uuid []) $$, :'client'),
  '28000', 'not authenticated',
  'A token without a subject cannot create a session.'
);
reset role;
select tests.authenticate_as_service_role();
select throws_ok(
  format($$ select public.create_chat_session(array[%L]::uuid []) $$, :'client'),
  '28000', 'not authenticated',
  'The service role has no user id, so it cannot create a session through the function.'
);

-- ---------------------------------------------------------------- client
reset role;
select tests.authenticate_as('client');
select results_eq(
  format($$ select s.participants, s.type, s.booking_id, s.status, s.title, s.created_by, s.closed_at
     from public.create_chat_session(
       array[%L, %L]::uuid [],
       'booking', 'b0000000-0000-4000-8000-000000000051', '  Evening reading  ') as s $$, :'client', :'reader'),
  format($$ values (array[%L, %L]::uuid [],
             'booking'::text, 'b0000000-0000-4000-8000-000000000051'::uuid, 'active'::text,
             'Evening reading'::text, %L::uuid, null::timestamptz) $$, :'client', :'reader', :'client'),
  'The client creates an active booking session with the reader; the title is trimmed and the client is the creator.'
);
select results_eq(
  format($$ select s.type, s.title from public.create_chat_session(array[%L]::uuid [],
                                                             title => '   ') as s $$, :'client'),
  $$ values ('support'::text, null::text) $$,
  'A session is a support session by default, and a blank title is stored as no title.'
);
select is(
  (
    select cardinality(s.participants)
    from public.create_chat_session(
        array(select ('0c000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid from generate_series(100, 148) as i)
        || :'client'::uuid
      ) as s
  ),
  50,
  'A session may have exactly 50 participants.'
);
select throws_ok(
  $$ select public.create_chat_session(null) $$,
  '22023', 'participants must list at least one user',
  'A session needs participants (null).'
);
select throws_ok(
  $$ select public.create_chat_session('{}'::uuid []) $$,
  '22023', 'participants must list at least one user',
  'A session needs participants (empty list).'
);
select throws_ok(
  format($$ select public.create_chat_session(
       array(select ('0c000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid from generate_series(100, 149) as i)
       || %L::uuid) $$, :'client'),
  '22023', 'participants may list at most 50 users',
  'A session may not have 51 participants.'
);
select throws_ok(
  format($$ select public.create_chat_session(array[%L, null]::uuid []) $$, :'client'),
  '22023', 'participants must not contain null',
  'Participants may not contain null.'
);
select throws_ok(
  format($$ select public.create_chat_session(array[%L, %L,
                                             %L]::uuid []) $$, :'client', :'reader', :'client'),
  '22023', 'participants must not repeat a user',
  'Participants may not repeat a user.'
);
select throws_ok(
  format($$ select public.create_chat_session(array[%L]::uuid [], 'group') $$, :'client'),
  '22023', 'type must be one of booking, support, emergency',
  'A session type outside booking, support and emergency is refused.'
);
select throws_ok(
  format($$ select public.create_chat_session(array[%L]::uuid [], null) $$, :'client'),
  '22023', 'type must be one of booking, support, emergency',
  'A null session type is refused.'
);
select throws_ok(
  format($$ select public.create_chat_session(array[%L, %L]::uuid [],
                                       'booking') $$, :'client', :'reader'),
  '22023', 'a booking session needs a booking_id',
  'A booking session without a booking_id is refused.'
);
select throws_ok(
  format($$ select public.create_chat_session(array[%L]::uuid [], title => repeat('x', 201)) $$, :'client'),
  '22023', 'title may be at most 200 characters',
  'A title longer than 200 characters is refused.'
);
select lives_ok(
  format($$ select public.create_chat_session(array[%L]::uuid [], title => repeat('x', 200)) $$, :'client'),
  'A title of exactly 200 characters is accepted.'
);
select throws_ok(
  format($$ select public.create_chat_session(array[%L, %L]::uuid []) $$, :'reader', :'other_reader'),
  '42501', 'you can only create sessions you take part in',
  'The client cannot create a session they do not take part in.'
);
select throws_ok(
  format($$ select public.create_chat_session(array[%L, '0c000000-0000-4000-8000-0000000000ff']::uuid []) $$, :'client'),
  '22023', 'unknown participants: 0c000000-0000-4000-8000-0000000000ff',
  'Every participant must be a user; the unknown ones are named.'
);

-- ---------------------------------------------------------------- reader
reset role;
select tests.authenticate_as('reader');
select results_eq(
  format($$ select s.type, s.created_by from public.create_chat_session(
       array[%L]::uuid [], 'emergency') as s $$, :'reader'),
  format($$ values ('emergency'::text, %L::uuid) $$, :'reader'),
  'The reader can create an emergency session with themselves alone.'
);

-- ---------------------------------------------------------------- admin and forged admin
reset role;
select tests.authenticate_as('admin');
select results_eq(
  format($$ select s.participants, s.created_by from public.create_chat_session(
       array[%L, %L]::uuid []) as s $$, :'client', :'reader'),
  format($$ values (array[%L, %L]::uuid [],
             %L::uuid) $$, :'client', :'reader', :'admin'),
  'The admin can create a session between other users, and is recorded as its creator.'
);
select throws_ok(
  $$ select public.create_chat_session(array['0c000000-0000-4000-8000-0000000000fe']::uuid []) $$,
  '22023', 'unknown participants: 0c000000-0000-4000-8000-0000000000fe',
  'Not even the admin can create a session with someone who is not a user.'
);
reset role;
select tests.authenticate_as('forger');
select throws_ok(
  format($$ select public.create_chat_session(array[%L, %L]::uuid []) $$, :'client', :'reader'),
  '42501', 'you can only create sessions you take part in',
  'A user whose user_metadata says admin cannot create a session between other users.'
);
reset role;
select tests.authenticate_with_claims(
  format(
    '{"sub": "%s", "role": "authenticated", "app_metadata": {}, "user_metadata": {"role": "super_admin"}}', :'forger'
  )::jsonb
);
select throws_ok(
  format($$ select public.create_chat_session(array[%L]::uuid []) $$, :'client'),
  '42501', 'you can only create sessions you take part in',
  'A token whose user_metadata says super_admin is not an admin either.'
);

-- ---------------------------------------------------------------- the sessions exist
reset role;
select set_config('request.jwt.claims', '', true);
select results_eq(
  format($$ select count(*)::int from public.chat_sessions where created_by in
       (%L, %L, %L)
       and id not in ('5e000000-0000-4000-8000-000000000001', '5e000000-0000-4000-8000-000000000002') $$, :'client', :'reader', :'admin'),
  array[6],
  'Exactly the six accepted calls created a session; no refused call left a row behind.'
);

select * from finish();
rollback;
