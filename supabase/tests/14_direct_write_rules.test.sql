-- Rules that hold for direct writes too (supabase-js straight to PostgREST), not only
-- through the SQL functions: server-stamped created_at, participants that exist.
begin;
set local search_path = extensions, public;
select plan(6);

do $$
begin
  perform tests.create_supabase_user('client', 'client@chat.test', '{"role": "client"}');
  perform tests.create_supabase_user('reader', 'reader@chat.test', '{"role": "reader"}');
  insert into public.chat_sessions (id, participants, type, created_by)
  values (
    '5e000000-0000-4000-8000-000000000001',
    array[tests.uid('client'), tests.uid('reader')]::uuid[],
    'support',
    tests.uid('client')
  );
end
$$;

-- Their ids as psql variables (:'client'), for statements run under another role.
select
  tests.uid('client') as client,
  tests.uid('reader') as reader
\gset

reset role;
select tests.authenticate_as('client');

insert into public.chat_messages (id, session_id, sender_id, content, created_at)
values (
  '3e000000-0000-4000-8000-000000000001', '5e000000-0000-4000-8000-000000000001',
  :'client', 'Backdated?', '2001-01-01'
);

select is(
  (
    select created_at from public.chat_messages
    where id = '3e000000-0000-4000-8000-000000000001'
  ),
  now(),
  'A participant cannot backdate a message: created_at is the server clock'
);

insert into public.chat_messages (id, session_id, sender_id, content, xact_id)
values (
  '3e000000-0000-4000-8000-000000000003', '5e000000-0000-4000-8000-000000000001',
  :'client', 'Hidden from catch-up?', '1'::xid8
);

select is(
  (
    select xact_id from public.chat_messages
    where id = '3e000000-0000-4000-8000-000000000003'
  ),
  pg_current_xact_id(),
  'A participant cannot choose xact_id: it is the writing transaction (changefeed catch-up)'
);

select throws_ok(
  format($$ insert into public.chat_sessions (participants, type, created_by)
     values (array[%L,
                   '0c000000-0000-4000-8000-0000000000ff']::uuid[], 'support',
             %L) $$, :'client', :'client'),
  '22023',
  'unknown participants: 0c000000-0000-4000-8000-0000000000ff',
  'A direct session insert naming a user that does not exist is refused'
);

select lives_ok(
  format($$ insert into public.chat_sessions (participants, type, created_by)
     values (array[%L,
                   %L]::uuid[], 'emergency',
             %L) $$, :'client', :'reader', :'client'),
  'A direct session insert between existing users is accepted'
);

select throws_ok(
  format($$ insert into public.chat_sessions (participants, type, created_by)
     values (array[%L,
                   %L]::uuid[], 'support',
             %L) $$, :'client', :'client', :'client'),
  '23514',
  null,
  'A session listing the same user twice is refused by the participants check'
);

reset role;
select set_config('request.jwt.claims', '', true);

insert into public.chat_messages (id, session_id, sender_id, content, created_at)
values (
  '3e000000-0000-4000-8000-000000000002', '5e000000-0000-4000-8000-000000000001',
  :'reader', 'Imported', '2001-01-01'
);

select is(
  (
    select created_at from public.chat_messages
    where id = '3e000000-0000-4000-8000-000000000002'
  ),
  '2001-01-01'::timestamptz,
  'The table owner (imports, seeds) may still set created_at'
);

select * from finish();
rollback;
