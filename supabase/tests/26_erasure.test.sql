-- Deleting a user from auth.users, as Supabase Auth (supabase_auth_admin), the service
-- role and postgres do it, always succeeds and erases the user's chat data in each mode;
-- the audit chain still verifies afterwards and still catches a row altered later.
-- Users: ann (redact, deleted by Supabase Auth), cat (retain, by the service role),
-- dan (delete, by postgres); bob is the reader who stays in every session.
begin;
set local search_path = extensions, public;
select plan(33);

do $$
declare
  ann uuid := tests.create_supabase_user('ann', 'ann@chat.test', '{"role": "client"}', '{"full_name": "Ann"}');
  bob uuid := tests.create_supabase_user('bob', 'bob@chat.test', '{"role": "reader"}', '{"full_name": "Bob"}');
  s_shared uuid := '5e000000-0000-4000-8000-0000000000a1';
  s_alone uuid := '5e000000-0000-4000-8000-0000000000a2';
begin
  perform tests.create_supabase_user('cat', 'cat@chat.test', '{"role": "client"}', '{}');
  perform tests.create_supabase_user('dan', 'dan@chat.test', '{"role": "client"}', '{}');
  insert into public.chat_sessions (id, participants, type, created_by, title)
  values
  (s_shared, array[ann, bob], 'support', ann, 'Ann''s reading'),
  (s_alone, array[ann], 'support', ann, 'Notes to self');
  insert into storage.objects (bucket_id, name, owner, owner_id, metadata)
  values
  ('chat-files', s_shared || '/' || ann || '/voice.webm', ann, ann, '{"size": 9, "mimetype": "audio/webm"}'),
  ('chat-files', s_alone || '/' || ann || '/memo.txt', ann, ann, '{"size": 4, "mimetype": "text/plain"}'),
  ('chat-files', s_shared || '/' || bob || '/card.png', bob, bob, '{"size": 8, "mimetype": "image/png"}');
  insert into public.chat_messages (id, session_id, sender_id, type, content, metadata, created_at)
  values
  ('3e000000-0000-4000-8000-0000000000a1', s_shared, ann, 'text', 'My phone is 555 0101', '{}', now() - interval '3 minutes'),
  ('3e000000-0000-4000-8000-0000000000a2', s_shared, ann, 'audio', null,
   jsonb_build_object('storage_path', s_shared || '/' || ann || '/voice.webm', 'duration_ms', 900),
   now() - interval '2 minutes'),
  ('3e000000-0000-4000-8000-0000000000a3', s_alone, ann, 'file', null,
   jsonb_build_object('storage_path', s_alone || '/' || ann || '/memo.txt'), now() - interval '2 minutes'),
  ('3e000000-0000-4000-8000-0000000000b1', s_shared, bob, 'image', null,
   jsonb_build_object('storage_path', s_shared || '/' || bob || '/card.png'), now() - interval '1 minute');
  insert into public.chat_messages (id, session_id, sender_id, content, reply_to_message_id)
  values ('3e000000-0000-4000-8000-0000000000b2', s_shared, bob, 'Thank you, Ann', '3e000000-0000-4000-8000-0000000000a1');
  insert into public.chat_read_state (session_id, user_id, last_read_message_id, last_read_at, last_read_seq)
  select s_shared, u.id, m.id, m.created_at, m.seq
  from public.chat_messages as m, (values (ann), (bob)) as u (id)
  where m.id = '3e000000-0000-4000-8000-0000000000a2';
  insert into public.chat_delivery_state (
    session_id, user_id, last_delivered_message_id, last_delivered_at, last_delivered_seq
  )
  select s_shared, ann, m.id, m.created_at, m.seq from public.chat_messages as m
  where m.id = '3e000000-0000-4000-8000-0000000000b2';
  insert into chat_private.webhook_waiting (session_id, user_id, since_at, since_seq, due_at)
  values (s_shared, ann, now(), 1, now());
  insert into chat_private.webhook_outbox (event_type, dedupe_key, session_id, user_id, payload)
  values ('chat.message.waiting', 'waiting:ann', s_shared, ann, jsonb_build_object('user_id', ann));
  insert into chat_private.pending_uploads (storage_path, user_id, bytes)
  values (s_shared || '/' || ann || '/unsent.png', ann, 10);
  insert into chat_private.upload_usage (user_id, day, bytes) values (ann, current_date, 10);
  insert into public.chat_monitoring (event_type, user_id, details)
  values ('connect', ann, '{"remote": "203.0.113.9"}');
  perform chat_private.link_audit_chain(10000, true);
end
$$;

-- ---------------------------------------------------------------- redact, by Supabase Auth
select is(
  (select erasure_mode from chat_private.lifecycle_settings),
  'redact',
  'The default erasure mode is redact.'
);
-- The API roles cannot reach the tests schema: the id is looked up before the role changes.
select tests.uid('ann') as ann_id \gset
set local role supabase_auth_admin;
delete from auth.users
where id = :'ann_id';
reset role;
select ok(
  not exists (
    select 1 from auth.users
    where id = tests.uid('ann')
  ),
  'Supabase Auth (supabase_auth_admin) deletes a user with sessions, messages, replies, receipts, uploads, webhook and audit rows.'
);

select is(
  (
    select count(*)::integer from public.chat_sessions
    where id = '5e000000-0000-4000-8000-0000000000a2'
  ),
  0,
  'A session where the user was alone is deleted.'
);
select is(
  (
    select participants from public.chat_sessions
    where id = '5e000000-0000-4000-8000-0000000000a1'
  ),
  array[tests.uid('bob')],
  'In a shared session the user leaves the participants...'
);
select is(
  (
    select created_by from public.chat_sessions
    where id = '5e000000-0000-4000-8000-0000000000a1'
  ),
  null,
  '... and is no longer its creator.'
);
select results_eq(
  $$ select id, sender_id, content, metadata, deleted_reason, type from public.chat_messages
     where session_id = '5e000000-0000-4000-8000-0000000000a1' order by created_at, seq $$,
  $$ values
     ('3e000000-0000-4000-8000-0000000000a1'::uuid, null::uuid, null::text, '{}'::jsonb, 'erased'::text, 'text'::text),
     ('3e000000-0000-4000-8000-0000000000a2', null, null, '{}', 'erased', 'audio'),
     ('3e000000-0000-4000-8000-0000000000b1', tests.uid('bob'),
      null, jsonb_build_object('storage_path', ('5e000000-0000-4000-8000-0000000000a1/' || tests.uid('bob') || '/card.png')),
      null, 'image'),
     ('3e000000-0000-4000-8000-0000000000b2', tests.uid('bob'), 'Thank you, Ann', '{}', null, 'text') $$,
  'redact: the other participant keeps each message''s place, time and type; the erased user''s are tombstones without sender, content or metadata.'
);
select is(
  (
    select reply_to_message_id from public.chat_messages
    where id = '3e000000-0000-4000-8000-0000000000b2'
  ),
  '3e000000-0000-4000-8000-0000000000a1'::uuid,
  'A reply to an erased message still points at its tombstone.'
);
select results_eq(
  $$ select user_id, last_read_message_id from public.chat_read_state
     where session_id = '5e000000-0000-4000-8000-0000000000a1' $$,
  $$ values (tests.uid('bob'), '3e000000-0000-4000-8000-0000000000a2'::uuid) $$,
  'The user''s read cursor is gone; the other participant''s stays where it was.'
);
select is(
  (
    select count(*)::integer from public.chat_delivery_state
    where user_id = tests.uid('ann')
  ),
  0,
  'The user''s delivery cursors are gone.'
);
select is(
  (
    select array_agg(storage_path order by storage_path) from chat_private.object_purges
  ),
  array[
    ('5e000000-0000-4000-8000-0000000000a1/' || tests.uid('ann') || '/unsent.png'),
    ('5e000000-0000-4000-8000-0000000000a1/' || tests.uid('ann') || '/voice.webm'),
    ('5e000000-0000-4000-8000-0000000000a2/' || tests.uid('ann') || '/memo.txt')
  ],
  'Every file of the user, sent or not, and of the deleted session, is queued for removal from the store; the other participant''s stays.'
);
select is(
  (
    select
      (
        select count(*) from chat_private.webhook_waiting
        where user_id = tests.uid('ann')
      )
      + (
        select count(*) from chat_private.webhook_outbox
        where payload::text like ('%' || tests.uid('ann') || '%')
      )
      + (
        select count(*) from chat_private.pending_uploads
        where user_id = tests.uid('ann')
      )
      + (
        select count(*) from chat_private.upload_usage
        where user_id = tests.uid('ann')
      )
      + (
        select count(*) from public.chat_monitoring
        where user_id = tests.uid('ann')
      )
  )::integer,
  0,
  'Waiting periods, webhook rows, upload accounting and monitoring events of the user are gone.'
);
select is(
  (
    select count(*)::integer from public.chat_audit_logs
    where actor_id = tests.uid('ann')
      or details::text like ('%' || tests.uid('ann') || '%')
      or details::text like '%555 0101%'
  ),
  0,
  'No audit row names the user or holds what they wrote.'
);
select ok(
  (
    select count(*) from public.chat_audit_logs
    where erased_at is not null
  ) > 0,
  'The audit rows about the user are still there, erased in place.'
);
select is(
  (
    select details - 'via' - 'pseudonym' - 'erasure_id' from public.chat_audit_logs
    where action = 'user.erased'
    order by id desc limit 1
  ),
  '{"mode": "redact", "files": 3, "messages": 2, "sessions_left": 1, "sessions_deleted": 1, "audit_rows_erased": 9}'::jsonb,
  'One user.erased audit row counts what the erasure did...'
);
select results_eq(
  $$ select actor_role from public.chat_audit_logs where action = 'user.erased' $$,
  $$ values ('supabase_auth_admin'::text) $$,
  '... and names who erased (Supabase Auth''s role).'
);
select is(
  (
    select subject from chat_private.erasures
    order by id desc limit 1
  ),
  tests.uid('ann'),
  'The erasure keeps the user''s id only until the service has followed up...'
);

-- The other participant cannot read the erased user's file, even before the service removes it.
select tests.uid('bob') as bob_id \gset
select tests.authenticate_as('bob');
select is(
  (
    select array_agg(name order by name) from storage.objects
    where bucket_id = 'chat-files'
  ),
  array['5e000000-0000-4000-8000-0000000000a1/' || :'bob_id' || '/card.png'],
  'A file waiting for removal is readable by nobody: the other participant sees only their own.'
);
reset role;
select set_config('request.jwt.claims', '', true);

-- ---------------------------------------------------------------- the chain
select is(
  (select linked from chat_private.link_audit_chain(10000, true)) > 0,
  true,
  'The erasure''s rows are linked...'
);
select is(chat_private.verify_audit_chain(), null, '... and the whole chain verifies after the erasure.');

create function pg_temp.broken_after(tampering text) returns bigint
language plpgsql
as $$
declare
  _broken bigint;
begin
  begin
    execute tampering;
    _broken := chat_private.verify_audit_chain();
    raise exception 'undo the tampering';
  exception when raise_exception then
    if sqlerrm <> 'undo the tampering' then
      raise;
    end if;
  end;
  return _broken;
end
$$;

-- Tampering as the table owner, who can disable the append-only trigger.
alter table public.chat_audit_logs disable trigger chat_audit_logs_append_only;
select is(
  pg_temp.broken_after($$
    update public.chat_audit_logs set details = '{"erased": true, "erasure": 1, "note": "x"}'
    where id = (select min(id) from public.chat_audit_logs where erased_at is not null) $$),
  (
    select min(id) from public.chat_audit_logs
    where erased_at is not null
  ),
  'An erased row altered afterwards is named.'
);
select is(
  pg_temp.broken_after($$
    update public.chat_audit_logs set erased_at = null, erasure_id = null
    where id = (select min(id) from public.chat_audit_logs where erased_at is not null) $$),
  (
    select min(id) from public.chat_audit_logs
    where erased_at is not null
  ),
  'An erased row passed off as never erased is named (its details no longer match its digest).'
);
select is(
  pg_temp.broken_after($$
    update public.chat_audit_logs set details = details || '{"content_length": 1}'
    where id = (
      select max(a.id) from public.chat_audit_logs as a
      where a.erased_at is null
        and exists (
        select 1 from chat_private.audit_links as l
        where l.audit_id = a.id
      )
    ) $$),
  (
    select max(a.id) from public.chat_audit_logs as a
    where a.erased_at is null
      and exists (
        select 1 from chat_private.audit_links as l
        where l.audit_id = a.id
      )
  ),
  'A row that was not erased, altered afterwards, is named.'
);
alter table public.chat_audit_logs enable trigger chat_audit_logs_append_only;

-- ---------------------------------------------------------------- retain, by the service role
select chat_private.set_erasure_mode('retain');
insert into public.chat_sessions (id, participants, type, created_by)
values (
  '5e000000-0000-4000-8000-0000000000c1',
  array[tests.uid('cat'), tests.uid('bob')]::uuid[],
  'support', tests.uid('cat')
);
insert into public.chat_messages (id, session_id, sender_id, content)
values (
  '3e000000-0000-4000-8000-0000000000c1', '5e000000-0000-4000-8000-0000000000c1',
  tests.uid('cat'), 'Kept words'
);
select tests.uid('cat') as cat_id \gset
select tests.authenticate_as_service_role();
delete from auth.users
where id = :'cat_id';
reset role;
select set_config('request.jwt.claims', '', true);
select ok(
  not exists (
    select 1 from auth.users
    where id = tests.uid('cat')
  ),
  'The service role deletes a user (retain mode).'
);
select results_eq(
  $$ select sender_id, content, deleted_at from public.chat_messages
     where id = '3e000000-0000-4000-8000-0000000000c1' $$,
  $$ values (null::uuid, 'Kept words'::text, null::timestamptz) $$,
  'retain: the content stays, the sender becomes a deleted user.'
);

-- ---------------------------------------------------------------- delete, by postgres
select chat_private.set_erasure_mode('delete');
insert into public.chat_sessions (id, participants, type, created_by)
values (
  '5e000000-0000-4000-8000-0000000000d1',
  array[tests.uid('dan'), tests.uid('bob')]::uuid[],
  'support', tests.uid('bob')
);
insert into public.chat_messages (id, session_id, sender_id, content, created_at)
values
(
  '3e000000-0000-4000-8000-0000000000d1', '5e000000-0000-4000-8000-0000000000d1',
  tests.uid('bob'), 'Welcome', now() - interval '2 minutes'
),
(
  '3e000000-0000-4000-8000-0000000000d2', '5e000000-0000-4000-8000-0000000000d1',
  tests.uid('dan'), 'Thanks', now() - interval '1 minute'
);
insert into public.chat_messages (session_id, sender_id, content, reply_to_message_id)
values (
  '5e000000-0000-4000-8000-0000000000d1', tests.uid('bob'), 'You are welcome',
  '3e000000-0000-4000-8000-0000000000d2'
);
insert into public.chat_read_state (session_id, user_id, last_read_message_id, last_read_at, last_read_seq)
select
  m.session_id,
  tests.uid('bob'),
  m.id,
  m.created_at,
  m.seq
from public.chat_messages as m
where m.id = '3e000000-0000-4000-8000-0000000000d2';
delete from auth.users
where id = tests.uid('dan');
select ok(
  not exists (
    select 1 from auth.users
    where id = tests.uid('dan')
  ),
  'postgres (a dashboard admin) deletes a user (delete mode).'
);
select results_eq(
  $$ select content, reply_to_message_id from public.chat_messages
     where session_id = '5e000000-0000-4000-8000-0000000000d1' order by created_at, seq $$,
  $$ values ('Welcome'::text, null::uuid), ('You are welcome', null) $$,
  'delete: the user''s messages are gone; a reply to one of them no longer points anywhere.'
);
select is(
  (
    select last_read_message_id from public.chat_read_state
    where session_id = '5e000000-0000-4000-8000-0000000000d1'
  ),
  '3e000000-0000-4000-8000-0000000000d1'::uuid,
  'delete: a read cursor at a deleted message moves back to the newest one that stays.'
);

-- ---------------------------------------------------------------- the service's follow-up
select is(
  (select count(*)::integer from chat_private.pending_erasures()),
  3,
  'Three erasures wait for the service.'
);
select is(
  chat_private.finish_erasure((select min(erasure_id) from chat_private.pending_erasures())),
  false,
  'An erasure is not finished while its files are still in the store.'
);
delete from chat_private.object_purges;
update storage.objects set metadata = metadata
where name like ('%' || tests.uid('ann') || '%');
delete from storage.objects
where name like ('%' || tests.uid('ann') || '%');
select is(
  chat_private.finish_erasure((select min(erasure_id) from chat_private.pending_erasures())),
  true,
  'Once they are gone it is finished...'
);
select is(
  (
    select count(*)::integer from public.chat_audit_logs
    where details::text like ('%' || tests.uid('ann') || '%')
  ),
  0,
  '... the audit rows the file removals wrote are erased too...'
);
select is(
  (
    select count(*)::integer from chat_private.erasures
    where subject = tests.uid('ann')
  ),
  0,
  '... and the user''s id is dropped.'
);
select is(
  (select linked from chat_private.link_audit_chain(10000, true)) >= 0 and chat_private.verify_audit_chain() is null,
  true,
  'The chain still verifies after every erasure and follow-up.'
);

select * from finish();
rollback;
