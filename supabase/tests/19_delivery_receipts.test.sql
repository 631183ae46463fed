-- Delivery receipts: the delivery cursor moves forward only, for participants only, and
-- every participant's cursors can be read by the session's participants (nobody else).
begin;
set local search_path = extensions, public;
select plan(16);

do $$
begin
  perform tests.create_supabase_user('client', 'client@delivery.test', '{"role": "client"}');
  perform tests.create_supabase_user('reader', 'reader@delivery.test', '{"role": "reader"}');
  perform tests.create_supabase_user('outsider', 'outsider@delivery.test', '{"role": "client"}');
  perform tests.create_supabase_user('admin', 'admin@delivery.test', '{"role": "admin"}');
  insert into public.chat_sessions (id, participants, type, created_by)
  values (
    '5d000000-0000-4000-8000-000000000001',
    array[tests.uid('client'), tests.uid('reader')]::uuid [],
    'support', tests.uid('client')
  );
  insert into public.chat_messages (id, session_id, sender_id, content, created_at)
  values
  ('3d000000-0000-4000-8000-000000000001', '5d000000-0000-4000-8000-000000000001',
   tests.uid('client'), 'First', now() - interval '2 minutes'),
  ('3d000000-0000-4000-8000-000000000002', '5d000000-0000-4000-8000-000000000001',
   tests.uid('client'), 'Second', now() - interval '1 minute');
end
$$;

-- Their ids as psql variables (:'client'), for statements run under another role.
select
  tests.uid('client') as client,
  tests.uid('reader') as reader
\gset

select ok(
  (
    select relrowsecurity from pg_class
    where oid = 'public.chat_delivery_state'::regclass
  ),
  'Row-level security is on for chat_delivery_state.'
);

-- ---------------------------------------------------------------- who may acknowledge
reset role;
select tests.authenticate_as('outsider');
select throws_ok(
  $$ select public.mark_chat_messages_delivered('5d000000-0000-4000-8000-000000000001') $$,
  'P0002', 'chat session 5d000000-0000-4000-8000-000000000001 not found',
  'An outsider cannot acknowledge delivery in a session they do not take part in.'
);
select throws_ok(
  $$ select * from public.get_chat_receipts('5d000000-0000-4000-8000-000000000001') $$,
  'P0002', 'chat session 5d000000-0000-4000-8000-000000000001 not found',
  'An outsider cannot read the receipts of a session they do not take part in.'
);
reset role;
select tests.authenticate_as('admin');
select throws_ok(
  $$ select * from public.get_chat_receipts('5d000000-0000-4000-8000-000000000001') $$,
  'P0002', 'chat session 5d000000-0000-4000-8000-000000000001 not found',
  'An admin outside the session cannot read its receipts either.'
);

-- ---------------------------------------------------------------- the reader's cursor
reset role;
select tests.authenticate_as('reader');
select is(
  public.mark_chat_messages_delivered('5d000000-0000-4000-8000-000000000001', '3d000000-0000-4000-8000-000000000002'),
  true,
  'A participant acknowledges delivery up to a message: the cursor moves.'
);
select is(
  public.mark_chat_messages_delivered('5d000000-0000-4000-8000-000000000001', '3d000000-0000-4000-8000-000000000001'),
  false,
  'An older message does not move the cursor back (and is no error).'
);
select is(
  (
    select last_delivered_message_id from public.chat_delivery_state
    where user_id = :'reader'
  ),
  '3d000000-0000-4000-8000-000000000002'::uuid,
  'The cursor still names the newer message.'
);
select throws_ok(
  format($$ update public.chat_delivery_state set last_delivered_message_id = '3d000000-0000-4000-8000-000000000001'
     where user_id = %L $$, :'reader'),
  '22023', 'a delivery cursor cannot move backwards',
  'A direct write cannot move the cursor backwards either.'
);
select throws_ok(
  format($$ insert into public.chat_delivery_state (session_id, user_id, last_delivered_message_id, last_delivered_at, last_delivered_seq)
     values ('5d000000-0000-4000-8000-000000000001', %L,
             '3d000000-0000-4000-8000-000000000001', now(), 0) $$, :'client'),
  '42501', 'new row violates row-level security policy for table "chat_delivery_state"',
  'Nobody writes another user''s delivery cursor.'
);
select throws_ok(
  $$ select public.mark_chat_messages_delivered('5d000000-0000-4000-8000-000000000001', '3d000000-0000-4000-8000-0000000000ff') $$,
  '22023', 'up_to_message_id is not a message of this session',
  'The cursor cannot name a message of another session.'
);

-- ---------------------------------------------------------------- receipts
reset role;
select tests.authenticate_as('client');
select results_eq(
  $$ select user_id, delivered_message_id, read_message_id
     from public.get_chat_receipts('5d000000-0000-4000-8000-000000000001') order by user_id $$,
  format($$ values
     (%L::uuid, null::uuid, null::uuid),
     (%L::uuid, '3d000000-0000-4000-8000-000000000002'::uuid, null::uuid) $$, :'client', :'reader'),
  'The sender sees the reader''s delivery cursor, one row per participant.'
);
reset role;
select tests.authenticate_as('reader');
select public.mark_chat_messages_read('5d000000-0000-4000-8000-000000000001', '3d000000-0000-4000-8000-000000000001');
reset role;
select tests.authenticate_as('client');
select results_eq(
  format($$ select delivered_message_id, read_message_id from public.get_chat_receipts('5d000000-0000-4000-8000-000000000001')
     where user_id = %L $$, :'reader'),
  $$ values ('3d000000-0000-4000-8000-000000000002'::uuid, '3d000000-0000-4000-8000-000000000001'::uuid) $$,
  'Read and delivered are separate cursors: reading an older message keeps the newer delivery.'
);
reset role;
select tests.authenticate_as('client');
select public.mark_chat_messages_read('5d000000-0000-4000-8000-000000000001');
reset role;
select tests.authenticate_as('reader');
select public.mark_chat_messages_read('5d000000-0000-4000-8000-000000000001');
reset role;
select tests.authenticate_as('client');
select results_eq(
  format($$ select delivered_seq = read_seq from public.get_chat_receipts('5d000000-0000-4000-8000-000000000001')
     where user_id = %L $$, :'client'),
  $$ values (true) $$,
  'A read counts as delivered: without a delivery cursor, delivered is the read cursor.'
);
reset role;
select tests.authenticate_as('outsider');
select is_empty(
  $$ select 1 from public.chat_delivery_state $$,
  'An outsider sees no delivery cursor.'
);

-- ---------------------------------------------------------------- notification
reset role;
select tests.clear_authentication();
listen chat_events;
reset role;
select tests.authenticate_as('client');
select lives_ok(
  $$ select public.mark_chat_messages_delivered('5d000000-0000-4000-8000-000000000001') $$,
  'The sender acknowledges the newest message (their own).'
);
reset role;
select tests.clear_authentication();
select is(
  (
    select count(*)::int from pg_trigger
    where tgname = 'chat_delivery_state_notify' and not tgisinternal
  ),
  1,
  'A trigger notifies the relay (kind "delivered") when a delivery cursor moves.'
);

select * from finish();
rollback;
