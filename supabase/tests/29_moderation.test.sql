-- Moderation rules hold for supabase-js straight to PostgREST (SQL as authenticated): the
-- edit window, only the sender, tombstones, admins only for redaction, suspension and
-- freeze, and no direct update of a message by anyone but these functions.
begin;
set local search_path = extensions, public;
select plan(21);

do $$
begin
  perform tests.create_supabase_user('ann', 'ann@chat.test', '{"role": "client"}');
  perform tests.create_supabase_user('bob', 'bob@chat.test', '{"role": "reader"}');
  perform tests.create_supabase_user('ada', 'ada@chat.test', '{"role": "admin"}');
  insert into public.chat_sessions (id, participants, type, created_by)
  values (
    '5e000000-0000-4000-8000-0000000000a1',
    array[tests.uid('ann'), tests.uid('bob')]::uuid [],
    'support', tests.uid('ann')
  );
  insert into public.chat_messages (id, session_id, sender_id, content, created_at)
  values
  ('3e000000-0000-4000-8000-0000000000a1', '5e000000-0000-4000-8000-0000000000a1',
   tests.uid('ann'), 'Fresh', now()),
  ('3e000000-0000-4000-8000-0000000000a2', '5e000000-0000-4000-8000-0000000000a1',
   tests.uid('ann'), 'Old', now() - interval '1 hour');
end
$$;

-- Their ids as psql variables (:'client'), for statements run under another role.
select tests.uid('ann') as ann \gset

select tests.authenticate_as('ann');
select is(
  (select content from public.edit_chat_message('3e000000-0000-4000-8000-0000000000a1', 'Fresher')),
  'Fresher',
  'The sender edits a message within the window.'
);
select throws_ok(
  $$ select public.edit_chat_message('3e000000-0000-4000-8000-0000000000a2', 'Too late') $$,
  'CHEDW', null,
  'After the window the edit is refused.'
);
select throws_ok(
  $$ select public.delete_chat_message('3e000000-0000-4000-8000-0000000000a2') $$,
  'CHEDW', null,
  'After the window the deletion is refused.'
);
select throws_ok(
  $$ update public.chat_messages set content = 'sneaky' where id = '3e000000-0000-4000-8000-0000000000a2' $$,
  '42501', null,
  'A direct update of a message is refused (no grant).'
);
select results_eq(
  $$ select deleted_reason, content, sender_id from public.delete_chat_message('3e000000-0000-4000-8000-0000000000a1') $$,
  format($$ values ('sender'::text, null::text, %L::uuid) $$, :'ann'),
  'Deleting leaves a tombstone with its sender and no content.'
);
select throws_ok(
  $$ select public.edit_chat_message('3e000000-0000-4000-8000-0000000000a1', 'Back from the dead') $$,
  'CHDEL', null,
  'A tombstone cannot be edited.'
);
select throws_ok(
  $$ select public.admin_redact_chat_message('3e000000-0000-4000-8000-0000000000a2', 'no') $$,
  '42501', null,
  'A participant cannot redact.'
);
reset role;

select tests.authenticate_as('bob');
insert into public.chat_messages (id, session_id, content, deleted_at, deleted_reason, edited_at, metadata)
values (
  '3e000000-0000-4000-8000-0000000000b9', '5e000000-0000-4000-8000-0000000000a1', 'Forged state',
  now(), 'moderator', '2020-01-01', jsonb_build_object('storage_path', '5e000000-0000-4000-8000-0000000000a1/' || :'ann' || '/theirs.pdf')
);
select results_eq(
  $$ select deleted_at, deleted_reason, edited_at from public.chat_messages where id = '3e000000-0000-4000-8000-0000000000b9' $$,
  $$ values (null::timestamptz, null::text, null::timestamptz) $$,
  'A user cannot insert a message already deleted, redacted or edited.'
);
select is(
  (
    select metadata ? 'storage_path' from public.chat_messages
    where id = '3e000000-0000-4000-8000-0000000000b9'
  ),
  false,
  'A text message cannot name a stored file...'
);
select lives_ok(
  $$ select public.delete_chat_message('3e000000-0000-4000-8000-0000000000b9') $$,
  '... so deleting it removes no one''s file:'
);
reset role;
select is(
  (
    select count(*)::integer from chat_private.object_purges
    where storage_path like '%theirs.pdf'
  ),
  0,
  'nothing of the other participant''s is queued for removal.'
);
select tests.authenticate_as('bob');
select throws_ok(
  $$ select public.edit_chat_message('3e000000-0000-4000-8000-0000000000a2', 'Not mine') $$,
  'P0002', null,
  'The other participant cannot edit someone else''s message.'
);
reset role;

select tests.authenticate_as('ada');
select is(
  (select deleted_reason from public.admin_redact_chat_message('3e000000-0000-4000-8000-0000000000a2', 'rude')),
  'moderator',
  'An admin redacts any message with a reason.'
);
select is(
  jsonb_array_length(public.admin_chat_message_history('3e000000-0000-4000-8000-0000000000a2') -> 'history'),
  1,
  'The original is kept for admins.'
);
select lives_ok(
  format($$ select public.admin_suspend_chat_user(%L, null, 'spam') $$, :'ann'),
  'An admin suspends a user.'
);
reset role;

select tests.authenticate_as('ann');
select throws_ok(
  $$ insert into public.chat_messages (session_id, content) values ('5e000000-0000-4000-8000-0000000000a1', 'still here') $$,
  'CHSUS', 'you are suspended from chat',
  'A suspended user cannot post through PostgREST.'
);
select throws_ok(
  $$ insert into public.chat_messages (session_id, type, metadata)
     values ('5e000000-0000-4000-8000-0000000000a1', 'audio', '{"storage_path": "elsewhere/x.webm"}') $$,
  'CHSUS', 'you are suspended from chat',
  'A suspended user''s file message is refused for the suspension, before its file is looked at.'
);
reset role;
select set_config('chat.until', (now() + interval '1 hour')::text, false);
update chat_private.suspensions set until = current_setting('chat.until')::timestamptz
where user_id = :'ann';
select tests.authenticate_as('ann');
select throws_ok(
  $$ insert into public.chat_messages (session_id, content) values ('5e000000-0000-4000-8000-0000000000a1', 'later?') $$,
  'CHSUS',
  'you are suspended from chat until '
  || to_char(current_setting('chat.until')::timestamptz at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
  'A suspension with an end says until when.'
);
select throws_ok(
  $$ select public.broadcast_chat_typing('5e000000-0000-4000-8000-0000000000a1') $$,
  'P0002', null,
  'A suspended user cannot type into the session''s Realtime topic either.'
);
reset role;

select tests.authenticate_as('ada');
select public.admin_lift_chat_suspension(:'ann');
select public.admin_freeze_chat_session('5e000000-0000-4000-8000-0000000000a1', true);
reset role;
select tests.authenticate_as('bob');
select throws_ok(
  $$ select public.send_chat_message(session_id => '5e000000-0000-4000-8000-0000000000a1', content => 'hello?') $$,
  'CHFRZ', null,
  'Nobody posts to a frozen session.'
);
reset role;
select tests.authenticate_as('ada');
select public.admin_freeze_chat_session('5e000000-0000-4000-8000-0000000000a1', false);
reset role;
select tests.authenticate_as('bob');
select lives_ok(
  $$ select public.send_chat_message(session_id => '5e000000-0000-4000-8000-0000000000a1', content => 'hello again') $$,
  'Unfrozen, posting works again.'
);
reset role;

select * from finish();
rollback;
