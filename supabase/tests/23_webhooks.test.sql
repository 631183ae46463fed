-- The webhook outbox, waiting periods and cursor live in chat_private where no API role can
-- touch them; admins list and replay deliveries through audited functions only.
begin;
set local search_path = extensions, public;
select plan(31);

do $$
begin
  perform tests.create_supabase_user('client', 'client@chat.test', '{"role": "client"}');
  perform tests.create_supabase_user('reader', 'reader@chat.test', '{"role": "reader"}');
  perform tests.create_supabase_user('admin', 'admin@chat.test', '{"role": "admin"}');
  perform tests.create_supabase_user('forger', 'forger@chat.test', '{"role": "client"}', '{"role": "admin"}');
  perform tests.create_supabase_user('root', 'root@chat.test', '{"role": "super_admin"}');

  insert into public.chat_sessions (id, participants, type, created_by)
  values ('5e000000-0000-4000-8000-000000000001',
    array[tests.uid('client'), tests.uid('reader')]::uuid[],
    'support', tests.uid('client'));

  insert into chat_private.webhook_outbox (id, event_type, dedupe_key, session_id, payload, status, dead_reason, attempts)
  values
  ('d0000000-0000-4000-8000-000000000001', 'chat.session.created',
   'chat.session.created:5e000000-0000-4000-8000-000000000001',
   '5e000000-0000-4000-8000-000000000001', '{"type": "chat.session.created"}', 'dead', 'gone', 1),
  ('d0000000-0000-4000-8000-000000000002', 'chat.message.waiting', 'chat.message.waiting:x',
   '5e000000-0000-4000-8000-000000000001', '{"type": "chat.message.waiting"}', 'pending', null, 0);

  insert into chat_private.webhook_waiting (session_id, user_id, since_at, since_seq, due_at)
  values ('5e000000-0000-4000-8000-000000000001', tests.uid('reader'),
    now(), 1, now() + interval '30 seconds');
  insert into chat_private.webhook_cursor (snapshot, horizon) values (pg_current_snapshot(), now());
end
$$;

-- Their ids as psql variables (:'client'), for statements run under another role.
select
  tests.uid('admin') as admin,
  tests.uid('root') as root
\gset

-- ---------------------------------------------------------------- no API role
select table_privs_are(
  'chat_private', 'webhook_outbox', 'anon', '{}'::text[],
  'anon has no privilege on the webhook outbox.'
);
select table_privs_are(
  'chat_private', 'webhook_outbox', 'authenticated', '{}'::text[],
  'authenticated has no privilege on the webhook outbox.'
);
select table_privs_are(
  'chat_private', 'webhook_outbox', 'service_role', '{}'::text[],
  'service_role has no privilege on the webhook outbox.'
);
select table_privs_are(
  'chat_private', 'webhook_waiting', 'anon', '{}'::text[],
  'anon has no privilege on the waiting periods.'
);
select table_privs_are(
  'chat_private', 'webhook_waiting', 'authenticated', '{}'::text[],
  'authenticated has no privilege on the waiting periods.'
);
select table_privs_are(
  'chat_private', 'webhook_waiting', 'service_role', '{}'::text[],
  'service_role has no privilege on the waiting periods.'
);
select table_privs_are(
  'chat_private', 'webhook_cursor', 'anon', '{}'::text[],
  'anon has no privilege on the webhook cursor.'
);
select table_privs_are(
  'chat_private', 'webhook_cursor', 'authenticated', '{}'::text[],
  'authenticated has no privilege on the webhook cursor.'
);
select table_privs_are(
  'chat_private', 'webhook_cursor', 'service_role', '{}'::text[],
  'service_role has no privilege on the webhook cursor.'
);
select is(
  (
    select array_agg(c.relname::text order by c.relname)
    from pg_catalog.pg_class as c
    where c.relnamespace = 'chat_private'::regnamespace and c.relname like 'webhook\_%'
      and c.relkind = 'r' and c.relrowsecurity
  ),
  array['webhook_cursor', 'webhook_outbox', 'webhook_waiting'],
  'Row level security is on for the three webhook tables (no policies: nothing for anyone).'
);

reset role;
select tests.authenticate_as('admin');
select throws_ok(
  $$ select count(*) from chat_private.webhook_outbox $$,
  '42501', 'permission denied for table webhook_outbox',
  'Even an admin cannot read the outbox directly.'
);
reset role;
select tests.authenticate_as_service_role();
select throws_ok(
  $$ delete from chat_private.webhook_waiting $$,
  '42501', 'permission denied for table webhook_waiting',
  'The service role cannot touch the waiting periods.'
);
select throws_ok(
  $$ update chat_private.webhook_cursor set horizon = now() $$,
  '42501', 'permission denied for table webhook_cursor',
  'The service role cannot move the cursor.'
);
reset role;
select tests.clear_authentication();
select throws_ok(
  $$ select public.admin_chat_webhook_deliveries() $$,
  '42501', 'permission denied for function admin_chat_webhook_deliveries',
  'anon cannot call the admin list.'
);

-- ---------------------------------------------------------------- admins only
reset role;
select tests.authenticate_as('client');
select throws_ok(
  $$ select public.admin_chat_webhook_deliveries() $$,
  '42501', 'only admins can list webhook deliveries',
  'A client cannot list webhook deliveries.'
);
reset role;
select tests.authenticate_as('forger');
select throws_ok(
  $$ select public.admin_replay_chat_webhook('d0000000-0000-4000-8000-000000000001') $$,
  '42501', 'only admins can replay webhook deliveries',
  'A user_metadata "admin" cannot replay a delivery.'
);

reset role;
select tests.authenticate_as('admin');
select is(
  (public.admin_chat_webhook_deliveries() ->> 'total')::int, 2,
  'An admin lists every delivery.'
);
select is(
  (
    select jsonb_path_query_array(
      public.admin_chat_webhook_deliveries(status => 'dead'), '$.deliveries[*].dead_reason'
    )
  ),
  '["gone"]'::jsonb,
  'The dead letters are listed with their reason.'
);
select is(
  public.admin_chat_webhook_deliveries(status => 'dead') #>> '{deliveries,0,webhook_id}',
  'msg_d0000000000040008000000000000001',
  'The webhook-id is msg_ and the row id in hex.'
);
select throws_ok(
  $$ select public.admin_chat_webhook_deliveries(status => 'lost') $$,
  '22023', 'status must be pending, delivered or dead',
  'An unknown status is refused.'
);
select throws_ok(
  $$ select public.admin_chat_webhook_deliveries(max_rows => 201) $$,
  '22023', 'limit must be between 1 and 200',
  'Pages are at most 200 rows.'
);

select is(
  public.admin_replay_chat_webhook('d0000000-0000-4000-8000-000000000001') ->> 'status',
  'pending',
  'Replaying a dead delivery puts it back in the queue.'
);
select throws_ok(
  $$ select public.admin_replay_chat_webhook('d0000000-0000-4000-8000-000000000002') $$,
  '55000', 'webhook delivery d0000000-0000-4000-8000-000000000002 is already pending',
  'A pending delivery cannot be replayed.'
);
select throws_ok(
  $$ select public.admin_replay_chat_webhook('d0000000-0000-4000-8000-000000000099') $$,
  'P0002', 'webhook delivery d0000000-0000-4000-8000-000000000099 not found',
  'An unknown delivery is not found.'
);
reset role;
select tests.authenticate_as('root');
select is(
  (public.admin_chat_webhook_deliveries(status => 'pending') ->> 'total')::int, 2,
  'A super admin lists too; both deliveries are pending now.'
);
reset role;
select tests.clear_authentication();
reset role;

select results_eq(
  $$
    select o.status, o.dead_reason, o.replays, o.next_attempt_at <= now(), o.retry_since = now()
    from chat_private.webhook_outbox as o
    where o.id = 'd0000000-0000-4000-8000-000000000001'
  $$,
  $$ values ('pending'::text, null::text, 1, true, true) $$,
  'The replayed row is due now with a new retry window and counts the replay.'
);

-- ---------------------------------------------------------------- audited
select results_eq(
  $$
    select a.action, a.actor_id, a.actor_role
    from public.chat_audit_logs as a
    where a.action like 'admin.webhooks.%'
    order by a.id
  $$,
  format($$
    values
    ('admin.webhooks.read'::text, %L::uuid, 'admin'::text),
    ('admin.webhooks.read', %L::uuid, 'admin'),
    ('admin.webhooks.read', %L::uuid, 'admin'),
    ('admin.webhooks.replay', %L::uuid, 'admin'),
    ('admin.webhooks.read', %L::uuid, 'super_admin')
  $$, :'admin', :'admin', :'admin', :'admin', :'root'),
  'Every successful admin call wrote one audit row as the admin (refusals roll back).'
);
select is(
  (
    select a.details ->> 'previous_status'
    from public.chat_audit_logs as a
    where a.action = 'admin.webhooks.replay'
  ),
  'dead',
  'The replay audit row says what the delivery was before.'
);

-- ---------------------------------------------------------------- one row per event
select throws_ok(
  $$
    insert into chat_private.webhook_outbox (event_type, dedupe_key, payload)
    values ('chat.session.created', 'chat.session.created:5e000000-0000-4000-8000-000000000001', '{}')
  $$,
  '23505', null,
  'The same event (dedupe key) cannot be enqueued twice.'
);
select throws_ok(
  $$
    insert into chat_private.webhook_outbox (event_type, dedupe_key, payload, status)
    values ('chat.session.created', 'y', '{}', 'dead')
  $$,
  '23514', null,
  'A dead delivery must say why.'
);
select is(
  (
    select count(*)::int from chat_private.webhook_waiting
    where session_id = '5e000000-0000-4000-8000-000000000001'
  ),
  1,
  'One waiting period per participant and session (the fixture''s).'
);

select * from finish();
rollback;
