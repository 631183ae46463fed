-- Supabase Realtime on private topics chat:<session_id>, checked with the Realtime
-- server's own authorization sequence (lib/realtime/tenants/authorization.ex): probe rows of
-- (id, topic, extension) inserted as Realtime's database user, then the caller's role,
-- realtime.topic and claims set for the transaction, then a select (join) or an insert in a
-- savepoint (send, presence), then a rollback. And the broadcasts every write path makes.
begin;
set local search_path = extensions, public;
select plan(34);

do $$
begin
  perform tests.create_supabase_user('ann', 'ann@chat.test', '{"role": "client"}', '{"full_name": "Ann"}');
  perform tests.create_supabase_user('bob', 'bob@chat.test', '{"role": "reader"}', '{"full_name": "Bob"}');
  perform tests.create_supabase_user('ada', 'ada@chat.test', '{"role": "admin"}');
  perform tests.create_supabase_user('otto', 'otto@chat.test', '{"role": "client"}');
  insert into public.chat_sessions (id, participants, type, created_by)
  values
  ('5e000000-0000-4000-8000-0000000000a1',
   array[tests.uid('ann'), tests.uid('bob')]::uuid [],
   'support', tests.uid('ann')),
  ('5e000000-0000-4000-8000-0000000000b2',
   array[tests.uid('otto'), tests.uid('bob')]::uuid [],
   'support', tests.uid('otto'));
end
$$;

-- Their ids as psql variables (:'client'), for statements run under another role.
select
  tests.uid('ann') as ann,
  tests.uid('bob') as bob,
  tests.uid('ada') as ada,
  tests.uid('otto') as otto
\gset

-- The Realtime server's join check: may the caller read the topic?
create function pg_temp.can_join(claims jsonb, topic text) returns boolean
language plpgsql
as $$
declare
  _broadcast uuid := gen_random_uuid();
  _presence uuid := gen_random_uuid();
  _seen integer;
begin
  begin
    insert into realtime.messages (id, topic, extension)
    values (_broadcast, topic, 'broadcast'), (_presence, topic, 'presence');
    perform
      set_config('role', coalesce(claims ->> 'role', 'anon'), true),
      set_config('realtime.topic', topic, true),
      set_config('request.jwt.claims', claims::text, true),
      set_config('request.jwt.claim.sub', coalesce(claims ->> 'sub', ''), true),
      set_config('request.jwt.claim.role', coalesce(claims ->> 'role', ''), true),
      set_config('request.headers', '{"user-agent": "pgtap"}', true);
    select count(*) into _seen from realtime.messages where id in (_broadcast, _presence);
    raise exception 'roll back the probe';
  exception when raise_exception then
    null;
  end;
  return _seen > 0;
end
$$;

-- The Realtime server's write check (send for broadcast, track for presence).
create function pg_temp.can_write(claims jsonb, topic text, kind text) returns boolean
language plpgsql
as $$
declare
  _ok boolean;
begin
  begin
    perform
      set_config('role', coalesce(claims ->> 'role', 'anon'), true),
      set_config('realtime.topic', topic, true),
      set_config('request.jwt.claims', claims::text, true),
      set_config('request.jwt.claim.sub', coalesce(claims ->> 'sub', ''), true),
      set_config('request.jwt.claim.role', coalesce(claims ->> 'role', ''), true),
      set_config('request.headers', '{"user-agent": "pgtap"}', true);
    begin
      insert into realtime.messages (id, topic, extension) values (gen_random_uuid(), topic, kind);
      _ok := true;
    exception when insufficient_privilege then
      _ok := false;
    end;
    raise exception 'roll back the probe';
  exception when raise_exception then
    null;
  end;
  return _ok;
end
$$;

create function pg_temp.claims(who uuid) returns jsonb
language sql
as $$ select tests.user_claims(who) $$;

create function pg_temp.topic_a() returns text
language sql
as $$ select 'chat:5e000000-0000-4000-8000-0000000000a1'::text $$;

-- ---------------------------------------------------------------- join, send, presence
select is(
  pg_temp.can_join(pg_temp.claims(:'ann'), pg_temp.topic_a()), true,
  'A participant may join the session topic.'
);
select is(
  pg_temp.can_write(pg_temp.claims(:'ann'), pg_temp.topic_a(), 'broadcast'), true,
  'A participant may send broadcast on it...'
);
select is(
  pg_temp.can_write(pg_temp.claims(:'ann'), pg_temp.topic_a(), 'presence'), true,
  '... and track presence there.'
);
select is(
  pg_temp.can_join(pg_temp.claims(:'bob'), pg_temp.topic_a()), true,
  'The other participant may join.'
);
select is(
  pg_temp.can_write(pg_temp.claims(:'bob'), pg_temp.topic_a(), 'broadcast'), true,
  'The other participant may send broadcast.'
);
select is(
  pg_temp.can_write(pg_temp.claims(:'bob'), pg_temp.topic_a(), 'presence'), true,
  'The other participant may track presence.'
);
select is(
  pg_temp.can_join(pg_temp.claims(:'ada'), pg_temp.topic_a()), true,
  'An admin may join any session topic (read only)...'
);
select is(
  pg_temp.can_write(pg_temp.claims(:'ada'), pg_temp.topic_a(), 'broadcast'), false,
  '... but not send broadcast...'
);
select is(
  pg_temp.can_write(pg_temp.claims(:'ada'), pg_temp.topic_a(), 'presence'), false,
  '... nor track presence.'
);
select is(
  pg_temp.can_join(pg_temp.claims(:'otto'), pg_temp.topic_a()), false,
  'An outsider (a participant of another session) may not join.'
);
select is(
  pg_temp.can_write(pg_temp.claims(:'otto'), pg_temp.topic_a(), 'broadcast'), false,
  'An outsider may not send broadcast.'
);
select is(
  pg_temp.can_write(pg_temp.claims(:'otto'), pg_temp.topic_a(), 'presence'), false,
  'An outsider may not track presence.'
);
select is(
  pg_temp.can_join(pg_temp.claims(:'otto'), 'chat:5e000000-0000-4000-8000-0000000000b2'),
  true,
  'The same token may join its own session''s topic: the refusal above is about the session.'
);
select is(pg_temp.can_join('{"role": "anon"}', pg_temp.topic_a()), false, 'anon may not join.');
select is(pg_temp.can_write('{"role": "anon"}', pg_temp.topic_a(), 'broadcast'), false, 'anon may not send.');
select is(pg_temp.can_write('{"role": "anon"}', pg_temp.topic_a(), 'presence'), false, 'anon may not track presence.');
select is(
  pg_temp.can_join(pg_temp.claims(:'ann'), 'chat:not-a-session'),
  false,
  'A malformed chat topic is refused, not an error.'
);
select is(
  (
    select count(*)::integer from realtime.messages
    where payload is null
  ),
  0,
  'No probe row survives its check.'
);

-- Topics of other shapes are the platform's: its own policy still decides them.
create policy "Test: the lobby is open to everyone signed in"
on realtime.messages for select to authenticated
using ((select realtime.topic()) = 'room:lobby');
select is(
  pg_temp.can_join(pg_temp.claims(:'otto'), 'room:lobby'), true,
  'A platform''s own topic keeps its own policy.'
);
select is(
  pg_temp.can_join(pg_temp.claims(:'otto'), pg_temp.topic_a()), false,
  '... which opens no chat topic.'
);

-- ---------------------------------------------------------------- broadcasts of each path
create function pg_temp.broadcasts(kind text) returns integer
language sql
as $$
  select count(*)::integer from realtime.messages
  where topic = 'chat:5e000000-0000-4000-8000-0000000000a1' and event = kind
$$;

select tests.authenticate_as('ann');
select public.send_chat_message(session_id => '5e000000-0000-4000-8000-0000000000a1', content => 'via rpc');
insert into public.chat_messages (session_id, content)
values ('5e000000-0000-4000-8000-0000000000a1', 'via postgrest insert');
reset role;
select tests.authenticate_as_service_role();
insert into public.chat_messages (session_id, sender_id, content)
values ('5e000000-0000-4000-8000-0000000000a1', :'bob', 'via service role');
reset role;
select set_config('request.jwt.claims', '', true);

select is(pg_temp.broadcasts('new_message'), 3, 'Each write path (RPC, PostgREST insert, service role) broadcasts new_message once.');
select is(
  (
    select array_agg(m.payload ->> 'content' order by (m.payload ->> 'seq')::bigint)
    from realtime.messages as m
    where m.topic = pg_temp.topic_a() and m.event = 'new_message'
  ),
  array['via rpc', 'via postgrest insert', 'via service role'],
  'In the order they were written.'
);
select is(
  (
    select array_agg(k order by k) from (
      select jsonb_object_keys(m.payload) as k from realtime.messages as m
      where m.topic = pg_temp.topic_a() and m.event = 'new_message' and m.payload ->> 'content' = 'via rpc'
    ) as keys
  ),
  array[
    'client_message_id', 'content', 'created_at', 'deleted', 'deleted_reason', 'edited_at', 'id',
    'metadata', 'reply_to_message_id', 'sender_id', 'sender_name', 'seq', 'session_id', 'type'
  ],
  'The payload is the socket event''s new_message.'
);
select results_eq(
  $$ select m.payload ->> 'sender_name', m.private, m.extension from realtime.messages as m
     where m.topic = pg_temp.topic_a() and m.payload ->> 'content' = 'via rpc' $$,
  $$ values ('Ann'::text, true, 'broadcast'::text) $$,
  'It names the sender and is private broadcast.'
);

select tests.authenticate_as('bob');
select public.mark_chat_messages_read('5e000000-0000-4000-8000-0000000000a1');
reset role;
select is(pg_temp.broadcasts('messages_read'), 1, 'Reading broadcasts messages_read.');

-- A participant cannot forge a server event through the database.
select tests.authenticate_as('ann');
select set_config('realtime.topic', pg_temp.topic_a(), true);
select throws_ok(
  $$ insert into realtime.messages (topic, extension, event, payload, private)
     values ('chat:5e000000-0000-4000-8000-0000000000a1', 'broadcast', 'new_message', '{"content": "forged"}', true) $$,
  '42501', null,
  'A participant cannot insert a new_message broadcast.'
);
select realtime.send('{"content": "forged"}', 'new_message', 'chat:5e000000-0000-4000-8000-0000000000a1', true);
select lives_ok(
  $$ select public.broadcast_chat_typing('5e000000-0000-4000-8000-0000000000a1') $$,
  'A participant may say they are typing.'
);
reset role;
select is(pg_temp.broadcasts('new_message'), 3, 'realtime.send by a participant adds no new_message.');
select is(pg_temp.broadcasts('typing_start'), 1, 'broadcast_chat_typing adds one typing_start.');
select is(
  (
    select payload ->> 'user_id' from realtime.messages
    where event = 'typing_start'
  ),
  :'ann',
  'It names the typer.'
);
select tests.authenticate_as('otto');
select throws_ok(
  $$ select public.broadcast_chat_typing('5e000000-0000-4000-8000-0000000000a1') $$,
  'P0002', null,
  'An outsider cannot type into another session''s topic.'
);
reset role;
select set_config('request.jwt.claims', '', true);

-- Reading is bound to the topic checked: setting realtime.topic to one's own session does
-- not open another session's rows.
create function pg_temp.rows_read(claims jsonb, checked text, wanted text) returns integer
language plpgsql
as $$
declare
  _seen integer;
begin
  begin
    perform
      set_config('role', 'authenticated', true),
      set_config('realtime.topic', checked, true),
      set_config('request.jwt.claims', claims::text, true);
    select count(*) into _seen from realtime.messages as m where m.topic = wanted;
    raise exception 'roll back';
  exception when raise_exception then
    null;
  end;
  return _seen;
end
$$;
select is(
  pg_temp.rows_read(
    pg_temp.claims(:'otto'),
    'chat:5e000000-0000-4000-8000-0000000000b2', pg_temp.topic_a()
  ),
  0,
  'An outsider who checks their own topic reads none of another session''s rows.'
);
select ok(
  pg_temp.rows_read(
    pg_temp.claims(:'ann'), pg_temp.topic_a(), pg_temp.topic_a()
  ) > 0,
  'A participant reads their session''s rows.'
);

-- Switched off, nothing is broadcast.
update chat_private.realtime_settings set broadcast = false;
insert into public.chat_messages (session_id, sender_id, content)
values ('5e000000-0000-4000-8000-0000000000a1', :'bob', 'quiet');
select is(pg_temp.broadcasts('new_message'), 3, 'With realtime_settings.broadcast off, no broadcast.');

select * from finish();
rollback;
