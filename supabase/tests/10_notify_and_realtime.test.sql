-- Change notifications (pg_notify on chat_events) and the supabase_realtime publication.
begin;
set local search_path = extensions, public;
select plan(15);

-- Fixtures: the chat fixture of the test helpers (tests.create_chat_fixture).
select tests.create_chat_fixture();

-- Their ids as psql variables (:'client'), for statements run under another role.
select tests.uid('reader') as reader \gset

-- NOTIFY is delivered at commit and these tests roll back, so the payloads cannot be
-- observed here: the triggers, their functions and the publication are checked instead,
-- and the triggers are fired once by an ordinary participant.

-- ---------------------------------------------------------------- notify triggers
select trigger_is(
  'public', 'chat_messages', 'chat_messages_notify', 'chat_private', 'notify_message',
  'A new message is announced by chat_private.notify_message.'
);
select trigger_is(
  'public', 'chat_read_state', 'chat_read_state_notify', 'chat_private', 'notify_read_state',
  'A moved read cursor is announced by chat_private.notify_read_state.'
);
select trigger_is(
  'public', 'chat_sessions', 'chat_sessions_notify', 'chat_private', 'notify_session',
  'A new or changed session is announced by chat_private.notify_session.'
);
select results_eq(
  $$ select trigger_name::text collate "default", event_object_table::text collate "default",
            string_agg(event_manipulation::text, ',' order by event_manipulation::text) collate "default",
            action_timing::text collate "default", action_orientation::text collate "default"
     from information_schema.triggers
     where trigger_schema = 'public' and trigger_name like '%\_notify'
     group by 1, 2, 4, 5 order by 1 $$,
  $$ values ('chat_delivery_state_notify', 'chat_delivery_state', 'INSERT,UPDATE', 'AFTER', 'ROW'),
            ('chat_messages_notify', 'chat_messages', 'INSERT', 'AFTER', 'ROW'),
            ('chat_messages_state_notify', 'chat_messages', 'UPDATE', 'AFTER', 'ROW'),
            ('chat_read_state_notify', 'chat_read_state', 'INSERT,UPDATE', 'AFTER', 'ROW'),
            ('chat_sessions_notify', 'chat_sessions', 'INSERT,UPDATE', 'AFTER', 'ROW') $$,
  'The notify triggers fire after each inserted row (and updated row, for read and delivery state, sessions and a message''s content or state).'
);
select matches(
  (
    select pg_get_triggerdef(t.oid) from pg_catalog.pg_trigger as t
    where t.tgrelid = 'public.chat_sessions'::regclass and t.tgname = 'chat_sessions_notify'
  ),
  'AFTER INSERT OR UPDATE OF status, title ON public\.chat_sessions',
  'A session is announced when created, closed, reopened or renamed, not when only last_message_at moves.'
);
select is(
  (
    select array_agg(p.proname::text order by p.proname)
    from pg_catalog.pg_proc as p
    where p.pronamespace = 'chat_private'::regnamespace
      and p.prosrc ~ 'pg_notify\(\s*''chat_events'''
  ),
  array[
    'erase_auth_user', 'freeze_session_as_admin', 'notify_delivery_state', 'notify_message',
    'notify_message_state', 'notify_read_state', 'notify_session', 'relay_topic_typing',
    'suspend_as_admin'
  ],
  'Exactly the notify functions, the erasure, a freeze, a suspension and typing on a Realtime topic publish on channel chat_events.'
);
select is_definer(
  'chat_private', 'notify_read_state', '{}'::name[],
  'notify_read_state runs as its owner, so it can count messages whatever the caller may read.'
);
select is(
  (
    select coalesce(array_agg(p.proname::text order by p.proname), '{}')
    from pg_catalog.pg_proc as p
    where p.pronamespace = 'chat_private'::regnamespace
      and p.proname like 'notify\_%'
      and (p.proconfig is null or not ('search_path=""' = any(p.proconfig)))
  ),
  '{}'::text[],
  'Every notify function pins an empty search_path.'
);

-- ---------------------------------------------------------------- realtime publication
select results_eq(
  $$ select tablename::text collate "default" from pg_catalog.pg_publication_tables
     where pubname = 'supabase_realtime' and schemaname = 'public' order by tablename $$,
  $$ values ('chat_delivery_state'), ('chat_messages'), ('chat_read_state'), ('chat_sessions') $$,
  'Sessions, messages, read and delivery state are in publication supabase_realtime; audit and monitoring are not.'
);
select is(
  (
    select relreplident::text from pg_catalog.pg_class
    where oid = 'public.chat_messages'::regclass
  ),
  'f',
  'chat_messages has replica identity full, so realtime can check RLS on changed rows.'
);

-- ---------------------------------------------------------------- the triggers fire for participants
reset role;
select tests.authenticate_as('client');
select lives_ok(
  $$ select public.send_chat_message('5e000000-0000-4000-8000-000000000001', 'Ping') $$,
  'A participant''s message fires the message notify trigger without error.'
);
reset role;
select tests.authenticate_as('reader');
select lives_ok(
  $$ select public.mark_chat_messages_read('5e000000-0000-4000-8000-000000000001') $$,
  'A participant''s read cursor fires the read-state notify trigger without error.'
);
select lives_ok(
  $$ select public.mark_chat_messages_read('5e000000-0000-4000-8000-000000000001', '3e000000-0000-4000-8000-000000000002') $$,
  'A cursor that does not move fires nothing and fails nothing.'
);
select lives_ok(
  $$ select public.close_chat_session('5e000000-0000-4000-8000-000000000001') $$,
  'A participant closing a session fires the session notify trigger without error.'
);
select lives_ok(
  format($$ select public.create_chat_session(array[%L]::uuid [], 'emergency') $$, :'reader'),
  'A new session fires the session notify trigger without error.'
);

select * from finish();
rollback;
