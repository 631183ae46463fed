-- Nothing but a real erasure (a delete from auth.users) may change what the guards
-- protect or erase audit rows: not an API role, not a forged setting, not a forged row.
begin;
set local search_path = extensions, public;
select plan(9);

do $$
begin
  perform tests.create_supabase_user('ann', 'ann@chat.test', '{"role": "client"}');
  perform tests.create_supabase_user('bob', 'bob@chat.test', '{"role": "reader"}');
  insert into public.chat_sessions (id, participants, type, created_by)
  values (
    '5e000000-0000-4000-8000-0000000000a1',
    array[tests.uid('ann'), tests.uid('bob')]::uuid [],
    'support', tests.uid('ann')
  );
  insert into public.chat_messages (id, session_id, sender_id, content)
  values ('3e000000-0000-4000-8000-0000000000a1', '5e000000-0000-4000-8000-0000000000a1',
    tests.uid('ann'), 'Hello');
  perform chat_private.link_audit_chain(10000, true);
end
$$;

-- Their ids as psql variables (:'client'), for statements run under another role.
select
  tests.uid('ann') as ann,
  tests.uid('bob') as bob
\gset

select tests.authenticate_as('bob');
select throws_ok(
  format($$ delete from auth.users where id = %L $$, :'ann'),
  '42501', null,
  'A participant cannot delete another user (no grant on auth.users).'
);
select throws_ok(
  format($$ insert into chat_private.erasures (kind, subject, mode, actor_role)
     values ('user', %L, 'redact', 'client') $$, :'ann'),
  '42501', null,
  'A participant cannot write an erasure row.'
);
select set_config('chat.erasure', '1', true);
select is(
  chat_private.erasure_in_progress(:'ann'),
  false,
  'A forged chat.erasure setting does not make an erasure.'
);
reset role;

-- The service role may update sessions and messages: the guards still refuse, with the
-- forged setting in place.
select tests.authenticate_as_service_role();
select throws_ok(
  format($$ update public.chat_sessions set participants = array[%L]::uuid []
     where id = '5e000000-0000-4000-8000-0000000000a1' $$, :'bob'),
  '42501', 'chat session id, participants, type, booking_id, created_by and created_at cannot change',
  'Removing a participant outside an erasure is refused, forged setting or not.'
);
select throws_ok(
  $$ update public.chat_sessions set created_by = null where id = '5e000000-0000-4000-8000-0000000000a1' $$,
  '42501', 'chat session id, participants, type, booking_id, created_by and created_at cannot change',
  'Emptying created_by outside an erasure is refused.'
);
select throws_ok(
  $$ update public.chat_messages set sender_id = null where id = '3e000000-0000-4000-8000-0000000000a1' $$,
  '42501', 'chat message id, seq, session_id, sender_id and created_at cannot change',
  'Emptying a sender outside an erasure is refused.'
);
select throws_ok(
  $$ update public.chat_audit_logs set details = '{"erased": true, "erasure": 1}', erased_at = now(), erasure_id = 1
     where id = (select min(id) from public.chat_audit_logs) $$,
  '42501', null,
  'Erasing an audit row outside an erasure is refused.'
);
update public.chat_sessions set title = 'Renamed under a forged setting'
where id = '5e000000-0000-4000-8000-0000000000a1';
reset role;
select set_config('request.jwt.claims', '', true);
select is(
  (
    select details -> 'title' ->> 'to' from public.chat_audit_logs
    where action = 'session.updated'
    order by id desc limit 1
  ),
  'Renamed under a forged setting',
  'A forged chat.erasure setting does not hide a change from the audit.'
);

-- A participant may read the erasure mode's effects, not the settings.
select tests.authenticate_as('bob');
select throws_ok(
  $$ select erasure_mode from chat_private.lifecycle_settings $$,
  '42501', null,
  'A participant cannot read the lifecycle settings.'
);
reset role;

select * from finish();
rollback;
