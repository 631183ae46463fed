-- Admin reads of the audit log and the monitoring figures: app_metadata admins only,
-- through security definer functions that audit every read; monitoring retention.
begin;
set local search_path = extensions, public;
select plan(42);

-- Fixtures (as postgres): a client and a reader with a session of messages (one voice
-- message of 3000 bytes), their read cursors, monitoring events old and new; an admin, a
-- super admin, and a user whose user_metadata (editable by the user) claims admin.
do $$
begin
  perform tests.create_supabase_user('client', 'client@chat.test', '{"role": "client"}', '{"full_name": "Cora Client"}');
  perform tests.create_supabase_user('reader', 'reader@chat.test', '{"role": "reader"}');
  perform tests.create_supabase_user('admin', 'admin@chat.test', '{"role": "admin"}');
  perform tests.create_supabase_user('forger', 'forger@chat.test', '{"role": "client"}', '{"role": "admin"}');
  perform tests.create_supabase_user('root', 'root@chat.test', '{"role": "super_admin"}');

  insert into public.chat_sessions (id, participants, type, booking_id, title, created_by, created_at)
  values
  ('5e000000-0000-4000-8000-000000000001',
   array[tests.uid('client'), tests.uid('reader')]::uuid[],
   'booking', 'b0000000-0000-4000-8000-000000000001', 'Active consultation',
   tests.uid('client'), now() - interval '10 minutes');

  insert into storage.objects (bucket_id, name)
  values ('chat-files', '5e000000-0000-4000-8000-000000000001/' || tests.uid('client') || '/v.ogg');

  -- Client asks, reader answers 60 s later, client answers 30 s later, client again.
  insert into public.chat_messages (id, session_id, sender_id, type, content, metadata, created_at)
  values
  ('3e000000-0000-4000-8000-000000000001', '5e000000-0000-4000-8000-000000000001',
   tests.uid('client'), 'text', 'Question', '{}', now() - interval '5 minutes'),
  ('3e000000-0000-4000-8000-000000000002', '5e000000-0000-4000-8000-000000000001',
   tests.uid('reader'), 'text', 'Answer', '{}', now() - interval '4 minutes'),
  ('3e000000-0000-4000-8000-000000000003', '5e000000-0000-4000-8000-000000000001',
   tests.uid('client'), 'audio', null,
   jsonb_build_object(
     'storage_path', '5e000000-0000-4000-8000-000000000001/' || tests.uid('client') || '/v.ogg', 'size_bytes', 3000
   ),
   now() - interval '210 seconds'),
  ('3e000000-0000-4000-8000-000000000004', '5e000000-0000-4000-8000-000000000001',
   tests.uid('client'), 'text', 'Thanks', '{}', now() - interval '3 minutes');

  insert into public.chat_read_state (session_id, user_id, last_read_message_id, last_read_at, last_read_seq)
  select m.session_id, tests.uid('reader'), m.id, m.created_at, m.seq
  from public.chat_messages as m where m.id = '3e000000-0000-4000-8000-000000000002';

  insert into public.chat_monitoring (event_type, user_id, session_id, details, timestamp)
  values
  ('connect', tests.uid('client'), null, '{}', now() - interval '5 minutes'),
  ('connect', tests.uid('reader'), null, '{}', now() - interval '5 minutes'),
  ('join', tests.uid('client'), '5e000000-0000-4000-8000-000000000001', '{}', now() - interval '4 minutes'),
  ('error', tests.uid('client'), null, '{"code": "rate_limited"}', now() - interval '1 minute'),
  ('connect', tests.uid('client'), null, '{}', now() - interval '40 days');
end
$$;

-- Their ids as psql variables (:'client'), for statements run under another role.
select
  tests.uid('admin') as admin,
  tests.uid('root') as root
\gset

-- ---------------------------------------------------------------- who may read
reset role;
select tests.clear_authentication();
select throws_ok(
  $$ select public.admin_chat_audit_logs() $$,
  '42501', 'permission denied for function admin_chat_audit_logs',
  'An anonymous caller cannot read the audit log.'
);
select throws_ok(
  $$ select public.admin_chat_monitoring() $$,
  '42501', 'permission denied for function admin_chat_monitoring',
  'An anonymous caller cannot read the monitoring figures.'
);
reset role;
select tests.authenticate_with_claims('{"role": "authenticated", "app_metadata": {"role": "admin"}}');
select throws_ok(
  $$ select public.admin_chat_audit_logs() $$,
  '28000', 'not authenticated',
  'A token without a user cannot read the audit log, whatever its app role.'
);

reset role;
select tests.authenticate_as('client');
select throws_ok(
  $$ select public.admin_chat_audit_logs() $$,
  '42501', 'only admins can read the audit log',
  'A client cannot read the audit log.'
);
select throws_ok(
  $$ select public.admin_chat_session_monitoring('5e000000-0000-4000-8000-000000000001') $$,
  '42501', 'only admins can monitor sessions',
  'A client cannot monitor a session, not even their own.'
);
select throws_ok(
  $$ select public.admin_chat_monitoring() $$,
  '42501', 'only admins can read system monitoring',
  'A client cannot read the monitoring figures.'
);
select throws_ok(
  $$ select public.admin_verify_chat_audit_chain() $$,
  '42501', 'only admins can verify the audit log',
  'A client cannot verify the audit log.'
);
select throws_ok(
  $$ select chat_private.verify_audit_chain() $$,
  '42501', 'permission denied for function verify_audit_chain',
  'A client cannot call the private verification.'
);

reset role;
select tests.authenticate_as('reader');
select throws_ok(
  $$ select public.admin_chat_audit_logs() $$,
  '42501', 'only admins can read the audit log',
  'A reader cannot read the audit log.'
);
select throws_ok(
  $$ select public.admin_chat_session_monitoring('5e000000-0000-4000-8000-000000000001') $$,
  '42501', 'only admins can monitor sessions',
  'A reader cannot monitor a session.'
);
select throws_ok(
  $$ select public.admin_chat_monitoring() $$,
  '42501', 'only admins can read system monitoring',
  'A reader cannot read the monitoring figures.'
);

reset role;
select tests.authenticate_as('forger');
select throws_ok(
  $$ select public.admin_chat_audit_logs() $$,
  '42501', 'only admins can read the audit log',
  'A user_metadata role of admin grants no audit access.'
);
select throws_ok(
  $$ select public.admin_chat_session_monitoring('5e000000-0000-4000-8000-000000000001') $$,
  '42501', 'only admins can monitor sessions',
  'A user_metadata role of admin grants no session monitoring.'
);
select throws_ok(
  $$ select public.admin_chat_monitoring() $$,
  '42501', 'only admins can read system monitoring',
  'A user_metadata role of admin grants no system monitoring.'
);

-- ---------------------------------------------------------------- the audit log
reset role;
create temp table expected on commit drop as
select count(*)::integer as session_rows from public.chat_audit_logs as a
where a.session_id = '5e000000-0000-4000-8000-000000000001';
grant select on expected to authenticated;

reset role;
select tests.authenticate_as('admin');
select is(
  (public.admin_chat_audit_logs(session_id => '5e000000-0000-4000-8000-000000000001') ->> 'total')::integer,
  (select e.session_rows from expected as e),
  'An admin reads the total of a session''s audit rows.'
);
select is(
  (
    select jsonb_agg(e -> 'action')
    from jsonb_array_elements(public.admin_chat_audit_logs(
        max_rows => 2, session_id => '5e000000-0000-4000-8000-000000000001',
        action => 'message.created'
      ) -> 'logs') as e
  ),
  '["message.created", "message.created"]'::jsonb,
  'limit and action filter the page.'
);
select is(
  (
    public.admin_chat_audit_logs(
      max_rows => 1, skip_rows => 0, session_id => '5e000000-0000-4000-8000-000000000001',
      action => 'message.created'
    ) -> 'logs' -> 0 ->> 'message_id'
  ),
  '3e000000-0000-4000-8000-000000000004',
  'Newest first.'
);
select is(
  (public.admin_chat_audit_logs(action => 'message.created', since => now() + interval '1 hour') ->> 'total')::integer,
  0,
  'since filters by time.'
);
select is(
  (
    public.admin_chat_audit_logs(
      session_id => '5e000000-0000-4000-8000-000000000001', until => now() - interval '1 year'
    ) ->> 'total'
  )::integer,
  0,
  'until filters by time.'
);
select is(
  (
    public.admin_chat_audit_logs(
      user_id => :'admin', action => 'admin.audit.read'
    ) ->> 'total'
  )::integer,
  5,
  'Each read so far left an admin.audit.read row naming the admin; user_id filters by actor.'
);
select ok(
  (public.admin_chat_audit_logs(max_rows => 1) -> 'logs' -> 0) ?& array['hash', 'prev_hash', 'chain_seq'],
  'Rows carry their place in the hash chain.'
);
select throws_ok(
  $$ select public.admin_chat_audit_logs(max_rows => 0) $$,
  '22023', 'limit must be between 1 and 500',
  'A limit out of range is refused.'
);
select throws_ok(
  $$ select public.admin_chat_audit_logs(skip_rows => -1) $$,
  '22023', 'offset must not be negative',
  'A negative offset is refused.'
);
select is(
  public.admin_verify_chat_audit_chain() -> 'valid',
  'true'::jsonb,
  'An admin verifies the chain.'
);

-- ---------------------------------------------------------------- one session
reset role;
select tests.authenticate_as('root');
create temp table monitored on commit drop as
select public.admin_chat_session_monitoring('5e000000-0000-4000-8000-000000000001') as m;

select is(
  (select m -> 'message_counts' from monitored),
  '{"text": 3, "audio": 1, "total": 4}'::jsonb,
  'A super admin sees the message counts by type.'
);
select is(
  (select jsonb_path_query_array(m, '$.participants[*].name') from monitored),
  '["Cora Client", "reader"]'::jsonb,
  'Participants are listed with their display names.'
);
select is(
  (select jsonb_path_query_array(m, '$.participants[*].unread_count') from monitored),
  '[1, 2]'::jsonb,
  'Unread counts per participant: messages from others after each read cursor.'
);
select is(
  (select jsonb_path_query_array(m, '$.participants[*].messages_sent') from monitored),
  '[3, 1]'::jsonb,
  'Messages sent per participant.'
);
select is(
  (select m -> 'response_time' from monitored),
  '{"responses": 2, "median_seconds": 45.000}'::jsonb,
  'The median response time between participants (60 s and 30 s).'
);
select is(
  (select m -> 'uploads' from monitored),
  '{"count": 1, "bytes": 3000}'::jsonb,
  'Uploads: count and bytes from metadata.size_bytes.'
);
select is(
  (select m -> 'first_message' ->> 'id' from monitored) || ' ' || (select m -> 'last_message' ->> 'id' from monitored),
  '3e000000-0000-4000-8000-000000000001 3e000000-0000-4000-8000-000000000004',
  'The first and the last message.'
);
select ok(
  (select (m ->> 'duration_seconds')::numeric between 599 and 700 from monitored),
  'The duration of an open session runs from its creation until now.'
);
select throws_ok(
  $$ select public.admin_chat_session_monitoring('5e000000-0000-4000-8000-00000000dead') $$,
  'P0002', 'chat session 5e000000-0000-4000-8000-00000000dead not found',
  'An unknown session is not found.'
);

-- ---------------------------------------------------------------- the whole system
create temp table overview on commit drop as
select public.admin_chat_monitoring() as o;
select is(
  (select o -> 'events_last_hour' from overview),
  '[{"event_type": "connect", "event_count": 2, "unique_users": 2},
    {"event_type": "error", "event_count": 1, "unique_users": 1},
    {"event_type": "join", "event_count": 1, "unique_users": 1}]'::jsonb,
  'The original service''s first query: events of the last hour by type, with unique users.'
);
select is(
  (select (o -> 'sessions_per_day' -> 0) - 'date' from overview),
  '{"type": "booking", "sessions_created": 1, "unique_participants": 2}'::jsonb,
  'The original service''s second query: sessions created per day and type, with unique participants.'
);
select is(
  (select o -> 'message_throughput' ->> 'last_hour' from overview),
  '4',
  'Message throughput over the last hour.'
);
select is(
  (select (o -> 'error_rate') - 'rate' from overview),
  '{"window_seconds": 3600, "events": 4, "errors": 1, "by_code": {"rate_limited": 1}}'::jsonb,
  'The error rate of the last hour, by code.'
);
select is(
  (select o -> 'uploads' -> 'last_24_hours' from overview),
  '{"count": 1, "bytes": 3000}'::jsonb,
  'Upload statistics.'
);
reset role;
select is(
  (
    select array_agg(a.action order by a.id) from public.chat_audit_logs as a
    where a.actor_id = :'root'
  ),
  array['admin.monitoring.session.read', 'admin.monitoring.read'],
  'Every admin read is audited with the reader as actor.'
);

-- ---------------------------------------------------------------- retention
reset role;
select tests.authenticate_as('root');
select throws_ok(
  $$ select public.purge_chat_monitoring(interval '30 days') $$,
  '42501', 'permission denied for function purge_chat_monitoring',
  'Users cannot purge monitoring events.'
);
reset role;
select tests.authenticate_as_service_role();
select is(
  public.purge_chat_monitoring(interval '30 days'),
  1::bigint,
  'The service role purges events older than the retention age, and only those.'
);
select throws_ok(
  $$ select public.purge_chat_monitoring(interval '1 second') $$,
  '22023', 'older_than must be at least one minute',
  'A retention age under a minute is refused.'
);

select * from finish();
rollback;
