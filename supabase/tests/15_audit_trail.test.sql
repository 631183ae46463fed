-- Audit trail: one chat_audit_logs row per change, whatever path made it, with the actor
-- from the JWT claims in force; the rows form a hash chain that verification checks.
begin;
set local search_path = extensions, public;
select plan(62);

-- Fixtures (as postgres): a client and a reader, an outsider, an admin (app_metadata) and
-- a user whose user_metadata (editable by the user) claims admin.
do $$
begin
  perform tests.create_supabase_user('client', 'client@chat.test', '{"role": "client"}');
  perform tests.create_supabase_user('reader', 'reader@chat.test', '{"role": "reader"}');
  perform tests.create_supabase_user('outsider', 'outsider@chat.test', '{"role": "client"}');
  perform tests.create_supabase_user('admin', 'admin@chat.test', '{"role": "admin"}');
  perform tests.create_supabase_user('forger', 'forger@chat.test', '{"role": "client"}', '{"role": "admin"}');

  insert into public.chat_sessions (id, participants, type, booking_id, title, created_by)
  values
  ('5e000000-0000-4000-8000-000000000001',
   array[tests.uid('client'), tests.uid('reader')]::uuid [],
   'booking', 'b0000000-0000-4000-8000-000000000001', 'Active consultation',
   tests.uid('client')),
  ('5e000000-0000-4000-8000-000000000002',
   array[tests.uid('client'), tests.uid('reader')]::uuid [],
   'support', null, 'Files', tests.uid('client'));
end
$$;

-- Their ids as psql variables (:'client'), for statements run under another role.
select
  tests.uid('client') as client,
  tests.uid('reader') as reader,
  tests.uid('outsider') as outsider,
  tests.uid('admin') as admin,
  tests.uid('forger') as forger
\gset

-- The audit rows of a session (or of no session) with one action, as "actor_role:actor_id".
create function pg_temp.actors(target_session uuid, target_action text) returns text[]
language sql
as $$
  select coalesce(array_agg(a.actor_role || ':' || coalesce(a.actor_id::text, '-') order by a.id), '{}')
  from public.chat_audit_logs as a
  where a.session_id is not distinct from target_session and a.action = target_action
$$;

-- ---------------------------------------------------------------- SQL as the table owner
select is(
  pg_temp.actors('5e000000-0000-4000-8000-000000000001', 'session.created'),
  array['postgres:-'],
  'A session inserted with no JWT claims is audited with the database role as actor.'
);

-- ---------------------------------------------------------------- as a participant (RPC)
reset role;
select tests.authenticate_as('client');
select public.create_chat_session(
  array[:'client', :'reader']::uuid[],
  'support', null, 'Created through the API'
);
reset role;
select is(
  (
    select array_agg(a.actor_role || ':' || a.actor_id order by a.id)
    from public.chat_audit_logs as a
    where a.action = 'session.created' and a.details ->> 'title' = 'Created through the API'
  ),
  array['client:' || :'client'],
  'create_chat_session leaves session.created with the client as actor.'
);

reset role;
select tests.authenticate_as('client');
select public.send_chat_message(
  '5e000000-0000-4000-8000-000000000001', 'A private question', 'text', null, '{}', 'q-1'
);
reset role;
select is(
  pg_temp.actors('5e000000-0000-4000-8000-000000000001', 'message.created'),
  array['client:' || :'client'],
  'send_chat_message leaves message.created with the sender as actor.'
);
select is(
  (
    select a.message_id from public.chat_audit_logs as a
    where a.action = 'message.created' and a.session_id = '5e000000-0000-4000-8000-000000000001'
  ),
  (
    select m.id from public.chat_messages as m
    where m.client_message_id = 'q-1'
  ),
  'The message.created row names the message.'
);
select is(
  (
    select a.details - 'via' - 'seq' from public.chat_audit_logs as a
    where a.action = 'message.created' and a.session_id = '5e000000-0000-4000-8000-000000000001'
  ),
  jsonb_build_object(
    'type', 'text', 'sender_id', :'client',
    'content_length', 18, 'client_message_id', 'q-1'
  ),
  'The audit keeps the message''s shape and length, never its content.'
);

-- The message moved the session's last_message_at: not an audited session change.
select is(
  pg_temp.actors('5e000000-0000-4000-8000-000000000001', 'session.updated'),
  '{}'::text[],
  'A new message does not count as a session update.'
);

reset role;
select tests.authenticate_as('reader');
select public.mark_chat_messages_read('5e000000-0000-4000-8000-000000000001');
select public.mark_chat_messages_read('5e000000-0000-4000-8000-000000000001');
reset role;
select is(
  pg_temp.actors('5e000000-0000-4000-8000-000000000001', 'read_state.advanced'),
  array['reader:' || :'reader'],
  'Marking read leaves one read_state.advanced row; marking again without new messages none.'
);
select is(
  (
    select a.message_id from public.chat_audit_logs as a
    where a.action = 'read_state.advanced' and a.session_id = '5e000000-0000-4000-8000-000000000001'
  ),
  (
    select m.id from public.chat_messages as m
    where m.client_message_id = 'q-1'
  ),
  'The read_state.advanced row names the message read up to.'
);

-- ---------------------------------------------------------------- as a participant (tables)
-- What supabase-js does through PostgREST: plain inserts and updates under RLS.
reset role;
select tests.authenticate_as('reader');
insert into public.chat_messages (session_id, sender_id, content)
values ('5e000000-0000-4000-8000-000000000001', :'reader', 'An answer');
update public.chat_sessions set title = 'Renamed'
where id = '5e000000-0000-4000-8000-000000000001';
reset role;
select is(
  pg_temp.actors('5e000000-0000-4000-8000-000000000001', 'message.created'),
  array[
    'client:' || :'client', 'reader:' || :'reader'
  ],
  'A direct insert into chat_messages is audited like the function.'
);
select is(
  (
    select a.actor_role || ' ' || (a.details -> 'title')::text from public.chat_audit_logs as a
    where a.action = 'session.updated' and a.session_id = '5e000000-0000-4000-8000-000000000001'
  ),
  'reader {"to": "Renamed", "from": "Active consultation"}',
  'A title change is a session.updated row with the old and the new title.'
);

reset role;
select tests.authenticate_as('client');
select public.close_chat_session('5e000000-0000-4000-8000-000000000001');
reset role;
select is(
  pg_temp.actors('5e000000-0000-4000-8000-000000000001', 'session.closed'),
  array['client:' || :'client'],
  'Closing leaves session.closed with the closer as actor.'
);
select is(
  (
    select count(*)::integer from public.chat_audit_logs as a
    where a.action = 'message.created' and a.session_id = '5e000000-0000-4000-8000-000000000001'
      and a.details ->> 'type' = 'system'
  ),
  1,
  'The closing system message is audited too.'
);

-- ---------------------------------------------------------------- the service role
reset role;
select tests.authenticate_as_service_role();
insert into public.chat_sessions (id, participants, type, created_by)
values (
  '5e000000-0000-4000-8000-000000000009', array[:'outsider']::uuid[],
  'support', null
);
delete from public.chat_messages
where session_id = '5e000000-0000-4000-8000-000000000001' and content = 'An answer';
reset role;
select is(
  pg_temp.actors('5e000000-0000-4000-8000-000000000009', 'session.created'),
  array['service_role:-'],
  'A write under the service role is audited as service_role.'
);
select is(
  pg_temp.actors('5e000000-0000-4000-8000-000000000001', 'message.deleted'),
  array['service_role:-'],
  'Deleting a message is audited.'
);

-- ---------------------------------------------------------------- admins
reset role;
select tests.authenticate_as('admin');
select public.admin_close_chat_session('5e000000-0000-4000-8000-000000000009');
reset role;
select is(
  pg_temp.actors('5e000000-0000-4000-8000-000000000009', 'session.closed'),
  array['admin:' || :'admin'],
  'An admin closing someone else''s session is the actor, with the admin role.'
);

-- A role in user_metadata is not an app role.
reset role;
select tests.authenticate_as('forger');
select public.create_chat_session(array[:'forger']::uuid[], 'support');
reset role;
select is(
  (
    select array_agg(a.actor_role) from public.chat_audit_logs as a
    where a.action = 'session.created' and a.actor_id = :'forger'
  ),
  array['client'],
  'The actor role comes from app_metadata, never from user_metadata.'
);

-- ---------------------------------------------------------------- storage objects (chat-files)
insert into storage.buckets (id, name, public) values ('avatars', 'avatars', false);
reset role;
select tests.authenticate_as('client');
insert into storage.objects (bucket_id, name, owner, owner_id, metadata)
values (
  'chat-files', '5e000000-0000-4000-8000-000000000002/' || :'client' || '/voice.ogg',
  :'client', :'client',
  '{"size": 2048, "mimetype": "audio/ogg"}'
);
delete from storage.objects
where name = '5e000000-0000-4000-8000-000000000002/' || :'client' || '/voice.ogg';
reset role;
insert into storage.objects (bucket_id, name)
values ('avatars', '5e000000-0000-4000-8000-000000000002/' || :'client' || '/me.png');
select is(
  pg_temp.actors('5e000000-0000-4000-8000-000000000002', 'file.created'),
  array['client:' || :'client'],
  'Storing a chat file is audited with the uploader and the session of its folder.'
);
select is(
  (
    select a.details - 'via' from public.chat_audit_logs as a
    where a.action = 'file.created' and a.session_id = '5e000000-0000-4000-8000-000000000002'
  ),
  jsonb_build_object(
    'bucket', 'chat-files', 'size', 2048, 'mimetype', 'audio/ogg',
    'name', '5e000000-0000-4000-8000-000000000002/' || :'client' || '/voice.ogg'
  ),
  'The file.created row carries the object''s name, size and type.'
);
select is(
  pg_temp.actors('5e000000-0000-4000-8000-000000000002', 'file.removed'),
  array['client:' || :'client'],
  'Removing a chat file is audited.'
);
select is(
  (
    select count(*)::integer from public.chat_audit_logs as a
    where a.details ->> 'bucket' = 'avatars'
  ),
  0,
  'Objects of other buckets are not audited.'
);

-- ---------------------------------------------------------------- the hash chain
-- The background linker chains committed rows; this transaction never commits, so the
-- test links its own rows too. The links live in chat_private.audit_links.
select is(
  (select l.linked > 0 from chat_private.link_audit_chain(include_own_transaction => true) as l),
  true,
  'The linker chains the rows written so far.'
);
select is(chat_private.verify_audit_chain(), null, 'The chain verifies intact.');
select is(
  (
    select count(*)::integer from public.chat_audit_logs as a
    where not exists (
        select 1 from chat_private.audit_links as l
        where l.audit_id = a.id
      )
  ),
  0,
  'Every row is linked.'
);
select is(
  (
    select bool_and(a.chain_seq = a.n)
    from (
      select
        l.chain_seq,
        row_number() over (order by l.chain_seq) as n
      from chat_private.audit_links as l
    ) as a
  ),
  true,
  'chain_seq numbers the rows 1, 2, 3, ... without a gap.'
);
select is(
  (
    select bool_and(a.prev_hash = a.before)
    from (
      select
        l.prev_hash,
        lag(l.hash, 1, repeat('0', 64)) over (order by l.chain_seq) as before
      from chat_private.audit_links as l
    ) as a
  ),
  true,
  'Each row''s prev_hash is the hash of the row before it.'
);
select is(
  (select h.last_hash from chat_private.audit_chain_head as h),
  (
    select l.hash from chat_private.audit_links as l
    order by l.chain_seq desc limit 1
  ),
  'The chain head holds the newest row''s hash.'
);
select is(
  (
    select h.linked_through_xact < pg_current_xact_id()
    from chat_private.audit_chain_head as h
  ),
  true,
  'Linking this transaction''s own rows leaves the position before it: an older transaction still running may yet add rows.'
);

-- Tampering as the table owner, who can disable the append-only triggers. Each case runs
-- in a subtransaction that is undone after verification has named the first broken row.
create function pg_temp.audit_id(nth integer) returns bigint
language sql
as $$ select l.audit_id from chat_private.audit_links as l where l.chain_seq = nth $$;

create function pg_temp.broken_after(variadic tampering text[]) returns bigint
language plpgsql
as $$
declare
  _statement text;
  _broken bigint;
begin
  begin
    foreach _statement in array tampering loop
      execute _statement;
    end loop;
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

select is(
  pg_temp.broken_after(
    'alter table public.chat_audit_logs disable trigger chat_audit_logs_append_only',
    $$ update public.chat_audit_logs set details = details || '{"edited": true}'
       where id = pg_temp.audit_id(3) $$
  ),
  pg_temp.audit_id(3),
  'An edited row is named.'
);
select is(
  pg_temp.broken_after(
    'alter table public.chat_audit_logs disable trigger chat_audit_logs_append_only',
    'alter table chat_private.audit_links disable trigger audit_links_append_only',
    $$ update public.chat_audit_logs set actor_id = null, actor_role = 'postgres'
       where id = pg_temp.audit_id(4) $$,
    $$ update chat_private.audit_links as l set content_digest = chat_private.audit_digest(a)
       from public.chat_audit_logs as a where a.id = l.audit_id and l.chain_seq = 4 $$,
    $$ update chat_private.audit_links as l set hash = chat_private.audit_hash(a, l)
       from public.chat_audit_logs as a where a.id = l.audit_id and l.chain_seq = 4 $$
  ),
  pg_temp.audit_id(5),
  'A row edited with a recomputed hash breaks the link of the row after it.'
);
select is(
  pg_temp.broken_after(
    'alter table public.chat_audit_logs disable trigger chat_audit_logs_append_only',
    'delete from public.chat_audit_logs where id = pg_temp.audit_id(5)'
  ),
  pg_temp.audit_id(5),
  'A removed row whose link stays is named.'
);
select is(
  pg_temp.broken_after(
    'alter table public.chat_audit_logs disable trigger chat_audit_logs_append_only',
    'alter table chat_private.audit_links disable trigger audit_links_append_only',
    'delete from public.chat_audit_logs where id = pg_temp.audit_id(5)',
    'delete from chat_private.audit_links where chain_seq = 5'
  ),
  pg_temp.audit_id(6),
  'The row after a removed one and its link is named.'
);
select is(
  pg_temp.broken_after(
    'alter table public.chat_audit_logs disable trigger chat_audit_logs_append_only',
    'alter table chat_private.audit_links disable trigger audit_links_append_only',
    $$ delete from public.chat_audit_logs
       where id = (select h.last_id from chat_private.audit_chain_head as h) $$,
    $$ delete from chat_private.audit_links
       where chain_seq = (select h.last_seq from chat_private.audit_chain_head as h) $$
  ),
  (select h.last_id from chat_private.audit_chain_head as h),
  'A removed newest row is named.'
);
select ok(
  pg_temp.broken_after(
    $$ insert into public.chat_audit_logs (actor_role, action) values ('admin', 'forged.entry') $$,
    $$ insert into chat_private.audit_links (chain_seq, audit_id, prev_hash, hash, content_digest)
       select h.last_seq + 1, (select max(a.id) from public.chat_audit_logs as a), h.last_hash,
         repeat('0', 64), repeat('0', 64)
       from chat_private.audit_chain_head as h $$
  ) > (select h.last_id from chat_private.audit_chain_head as h),
  'A row slipped in with a chain place the linker never gave (past the chain head) is named.'
);

-- The newest id beforehand: the table may not be read in the statement that alters it.
select set_config('tests.max_audit_id', max(a.id)::text, true) from public.chat_audit_logs as a;
select ok(
  pg_temp.broken_after(
    'alter table public.chat_audit_logs disable trigger chat_audit_logs_stamp_insert',
    $$ insert into public.chat_audit_logs (actor_role, action) values ('admin', 'skipped.entry') $$
  ) > current_setting('tests.max_audit_id')::bigint,
  'A row the linker can never reach (written around the insert stamp, no transaction id) is named.'
);

select is(chat_private.verify_audit_chain(), null, 'Undone, the chain verifies intact again.');

-- ---------------------------------------------------------------- append-only, every role
-- Privileges are tested in 04; here the trigger, with UPDATE and DELETE granted to all.
grant update, delete on public.chat_audit_logs to anon, authenticated, service_role;
create policy "Test only: anyone may change audit rows"
on public.chat_audit_logs for all to anon, authenticated using (true) with check (true);

reset role;
select tests.clear_authentication();
select throws_ok(
  $$ update public.chat_audit_logs set action = 'edited' $$,
  '42501', 'chat_audit_logs is append-only: UPDATE is not allowed',
  'anon cannot update audit rows, even when granted UPDATE.'
);
select throws_ok(
  $$ delete from public.chat_audit_logs $$,
  '42501', 'chat_audit_logs is append-only: DELETE is not allowed',
  'anon cannot delete audit rows, even when granted DELETE.'
);
reset role;
select tests.authenticate_as('client');
select throws_ok(
  $$ update public.chat_audit_logs set action = 'edited' $$,
  '42501', 'chat_audit_logs is append-only: UPDATE is not allowed',
  'A client cannot update audit rows, even when granted UPDATE.'
);
select throws_ok(
  $$ delete from public.chat_audit_logs $$,
  '42501', 'chat_audit_logs is append-only: DELETE is not allowed',
  'A client cannot delete audit rows, even when granted DELETE.'
);
reset role;
select tests.authenticate_as('reader');
select throws_ok(
  $$ update public.chat_audit_logs set action = 'edited' $$,
  '42501', 'chat_audit_logs is append-only: UPDATE is not allowed',
  'A reader cannot update audit rows, even when granted UPDATE.'
);
select throws_ok(
  $$ delete from public.chat_audit_logs $$,
  '42501', 'chat_audit_logs is append-only: DELETE is not allowed',
  'A reader cannot delete audit rows, even when granted DELETE.'
);
reset role;
select tests.authenticate_as('admin');
select throws_ok(
  $$ update public.chat_audit_logs set action = 'edited' $$,
  '42501', 'chat_audit_logs is append-only: UPDATE is not allowed',
  'An admin cannot update audit rows, even when granted UPDATE.'
);
select throws_ok(
  $$ delete from public.chat_audit_logs $$,
  '42501', 'chat_audit_logs is append-only: DELETE is not allowed',
  'An admin cannot delete audit rows, even when granted DELETE.'
);
reset role;
select tests.authenticate_as_service_role();
select throws_ok(
  $$ update public.chat_audit_logs set details = '{}' $$,
  '42501', 'chat_audit_logs is append-only: UPDATE is not allowed',
  'The service role cannot rewrite details, even when granted UPDATE.'
);
select throws_ok(
  $$ delete from public.chat_audit_logs $$,
  '42501', 'chat_audit_logs is append-only: DELETE is not allowed',
  'The service role cannot delete audit rows, even when granted DELETE.'
);
reset role;
select set_config('request.jwt.claims', '', true);
select throws_ok(
  $$ delete from chat_private.audit_links $$,
  '42501', 'chat_private.audit_links is append-only: DELETE is not allowed',
  'The table owner cannot unlink rows from the chain.'
);
select throws_ok(
  $$ update chat_private.audit_links set hash = repeat('a', 64) $$,
  '42501', 'chat_private.audit_links is append-only: UPDATE is not allowed',
  'The table owner cannot rewrite a link.'
);
select throws_ok(
  $$ truncate chat_private.audit_links $$,
  '42501', 'chat_private.audit_links is append-only: TRUNCATE is not allowed',
  'The table owner cannot empty the chain.'
);

-- An audit row is written once; linking it writes a link, never the row.
insert into public.chat_audit_logs (actor_role, action) values ('postgres', 'pending.entry');
select throws_ok(
  $$ update public.chat_audit_logs set action = 'rewritten' where action = 'pending.entry' $$,
  '42501', 'chat_audit_logs is append-only: UPDATE is not allowed',
  'A pending row cannot be changed before it is linked.'
);
select is(chat_private.verify_audit_chain(), null, 'An unlinked row does not break the chain.');
select is(
  (chat_private.audit_chain_status() ->> 'unlinked')::integer, 1,
  'The status counts the unlinked tail.'
);
select is(
  (select l.linked from chat_private.link_audit_chain() as l), 0,
  'Rows of a transaction still running are not linked (they are not below its xmin).'
);
select is(
  (select l.linked from chat_private.link_audit_chain(include_own_transaction => true) as l), 1,
  'The pending row is linked once its transaction may be.'
);
select is(chat_private.verify_audit_chain(), null, 'The chain verifies intact with it.');

-- Only the linker writes links, and the database stamps every role's rows.
select tests.authenticate_as_service_role();
insert into public.chat_audit_logs (actor_role, action, created_at)
values ('service_role', 'forged.entry', '2001-01-01');
select throws_ok(
  $$ insert into chat_private.audit_links (chain_seq, audit_id, prev_hash, hash, content_digest)
     values (999999, 1, repeat('0', 64), repeat('0', 64), repeat('0', 64)) $$,
  '42501', null,
  'The service role cannot write a link.'
);
select throws_ok(
  $$ select 1 from chat_private.audit_links $$,
  '42501', null,
  'The service role cannot read the links table directly (the admin API serves the chain fields).'
);
reset role;
select set_config('request.jwt.claims', '', true);
select is(
  (
    select a.created_at = now() from public.chat_audit_logs as a
    where a.action = 'forged.entry'
  ),
  true,
  'A row inserted by the service role with its own created_at is stamped by the database.'
);
select is(
  (select l.linked from chat_private.link_audit_chain(include_own_transaction => true) as l), 1,
  'The linker chains it in its place.'
);
select is(chat_private.verify_audit_chain(), null, 'The chain verifies intact with the service role''s row.');

-- Restored into another cluster (pg_dump and restore), the head's position is a
-- transaction id this server has not reached: the linker starts again from the
-- beginning, skips what is linked, and links what is new.
update chat_private.audit_chain_head
set linked_through_xact = ((pg_current_xact_id()::text::bigint + 1000000)::text)::xid8
where id;
insert into public.chat_audit_logs (actor_role, action) values ('postgres', 'after.restore');
select is(
  (
    select row(l.linked, l.scanned >= l.linked)::text
    from chat_private.link_audit_chain(include_own_transaction => true) as l
  ),
  row(1, true)::text,
  'After a restore into another cluster, the linker starts again and links the new row.'
);
select is(
  (select h.linked_through_xact < pg_current_xact_id() from chat_private.audit_chain_head as h),
  true,
  'Its position is one of this server''s again.'
);
select is(chat_private.verify_audit_chain(), null, 'The chain verifies intact after the restart.');

select * from finish();
rollback;
