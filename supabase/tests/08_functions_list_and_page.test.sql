-- list_my_chat_sessions and get_chat_messages: the caller's sessions and message pages.
begin;
set local search_path = extensions, public;
select plan(38);

-- Fixtures: the chat fixture of the test helpers (tests.create_chat_fixture).
select tests.create_chat_fixture();

-- Their ids as psql variables (:'client'), for statements run under another role.
select
  tests.uid('client') as client,
  tests.uid('reader') as reader
\gset

-- S6: an empty session of the client and the reader, opened a minute ago (newest activity).
-- S7: six messages P1..P6 a minute apart, except P3 and P4 which share one instant.
insert into public.chat_sessions (id, participants, type, created_by, created_at)
values
(
  '5e000000-0000-4000-8000-000000000006',
  array[:'client', :'reader']::uuid[],
  'support', :'client', now() - interval '1 minute'
),
(
  '5e000000-0000-4000-8000-000000000007',
  array[:'client', :'reader']::uuid[],
  'support', :'client', now() - interval '1 day'
);
insert into public.chat_messages (id, session_id, sender_id, content, created_at)
select
  ('3e000000-0000-4000-8000-0000000000a' || i)::uuid,
  '5e000000-0000-4000-8000-000000000007',
  case when i % 2 = 0 then :'reader'::uuid
    else :'client'::uuid
  end,
  'P' || i,
  now() - interval '1 day' + make_interval(mins => case when i = 4 then 3 else i end)
from generate_series(1, 6) as i
order by i;

-- ---------------------------------------------------------------- list_my_chat_sessions
reset role;
select tests.authenticate_with_claims('{"role": "authenticated"}');
select is_empty(
  $$ select id from public.list_my_chat_sessions() $$,
  'A token without a subject lists no session.'
);

reset role;
select tests.authenticate_as('client');
select results_eq(
  $$ select id, status, unread_count from public.list_my_chat_sessions() $$,
  $$ values ('5e000000-0000-4000-8000-000000000006'::uuid, 'active'::text, 0::bigint),
            ('5e000000-0000-4000-8000-000000000001'::uuid, 'active'::text, 1::bigint),
            ('5e000000-0000-4000-8000-000000000002'::uuid, 'closed'::text, 0::bigint),
            ('5e000000-0000-4000-8000-000000000007'::uuid, 'active'::text, 3::bigint) $$,
  'The client lists their sessions, newest activity first, with what they have not read from others.'
);
select results_eq(
  $$ select last_message ->> 'id', last_message ->> 'sender_id', last_message ->> 'content'
     from public.list_my_chat_sessions() where id = '5e000000-0000-4000-8000-000000000001' $$,
  format($$ values ('3e000000-0000-4000-8000-000000000002'::text, %L::text,
             'Hello from the reader'::text) $$, :'reader'),
  'Each listed session carries its last message.'
);
select results_eq(
  $$ select last_message ->> 'content' from public.list_my_chat_sessions()
     where id = '5e000000-0000-4000-8000-000000000007' $$,
  $$ values ('P6'::text) $$,
  'The last message is the newest by created_at.'
);
select is_empty(
  $$ select last_message from public.list_my_chat_sessions()
     where id = '5e000000-0000-4000-8000-000000000006' and last_message is not null $$,
  'A session without messages has no last message.'
);
select results_eq(
  $$ select id from public.list_my_chat_sessions(1) $$,
  $$ values ('5e000000-0000-4000-8000-000000000006'::uuid) $$,
  'max_rows limits the list.'
);
select results_eq(
  $$ select id from public.list_my_chat_sessions(2, 1) $$,
  $$ values ('5e000000-0000-4000-8000-000000000001'::uuid), ('5e000000-0000-4000-8000-000000000002'::uuid) $$,
  'skip_rows pages through the list.'
);
select results_eq(
  $$ select count(*)::int from public.list_my_chat_sessions(0, -5) $$,
  array[1],
  'A max_rows below 1 lists one session, and a negative skip_rows skips none.'
);
select results_eq(
  $$ select count(*)::int from public.list_my_chat_sessions(null, null) $$,
  array[4],
  'Null max_rows and skip_rows fall back to the defaults.'
);
select is(
  public.mark_chat_messages_read('5e000000-0000-4000-8000-000000000001'), 1,
  'The client reads the reader''s message in S1.'
);
select results_eq(
  $$ select unread_count from public.list_my_chat_sessions() where id = '5e000000-0000-4000-8000-000000000001' $$,
  $$ values (0::bigint) $$,
  'Once read, a message is no longer counted as unread.'
);
select results_eq(
  $$ select char_length(m.content) from public.send_chat_message('5e000000-0000-4000-8000-000000000006', repeat('w', 300)) as m $$,
  array[300],
  'The client sends a long message to S6.'
);
select results_eq(
  $$ select char_length(last_message ->> 'content') from public.list_my_chat_sessions()
     where id = '5e000000-0000-4000-8000-000000000006' $$,
  array[200],
  'The last message''s content in the list is cut to 200 characters.'
);

reset role;
select tests.authenticate_as('reader');
select results_eq(
  $$ select id, unread_count from public.list_my_chat_sessions() $$,
  $$ values ('5e000000-0000-4000-8000-000000000006'::uuid, 1::bigint),
            ('5e000000-0000-4000-8000-000000000001'::uuid, 1::bigint),
            ('5e000000-0000-4000-8000-000000000002'::uuid, 1::bigint),
            ('5e000000-0000-4000-8000-000000000007'::uuid, 3::bigint) $$,
  'The reader lists the same sessions with their own unread counts.'
);
reset role;
select tests.authenticate_as('outsider');
select results_eq(
  $$ select id from public.list_my_chat_sessions() $$,
  $$ values ('5e000000-0000-4000-8000-000000000003'::uuid) $$,
  'The outsider lists only their own session.'
);
reset role;
select tests.authenticate_as('admin');
select is_empty(
  $$ select id from public.list_my_chat_sessions() $$,
  'The admin lists no session they do not take part in.'
);
reset role;
select tests.authenticate_as('forger');
select is_empty(
  $$ select id from public.list_my_chat_sessions() $$,
  'A user whose user_metadata says admin lists no session.'
);

-- ---------------------------------------------------------------- get_chat_messages
reset role;
select tests.authenticate_with_claims('{"role": "authenticated"}');
select throws_ok(
  $$ select * from public.get_chat_messages('5e000000-0000-4000-8000-000000000007') $$,
  '28000', 'not authenticated',
  'A token without a subject cannot read messages.'
);
reset role;
select tests.authenticate_as('outsider');
select throws_ok(
  $$ select * from public.get_chat_messages('5e000000-0000-4000-8000-000000000007') $$,
  'P0002', 'chat session 5e000000-0000-4000-8000-000000000007 not found',
  'The outsider cannot read the messages of a session they do not take part in.'
);
reset role;
select tests.authenticate_as('admin');
select throws_ok(
  $$ select * from public.get_chat_messages('5e000000-0000-4000-8000-000000000007') $$,
  'P0002', 'chat session 5e000000-0000-4000-8000-000000000007 not found',
  'The admin cannot read the messages of a session they do not take part in.'
);
reset role;
select tests.authenticate_as('forger');
select throws_ok(
  $$ select * from public.get_chat_messages('5e000000-0000-4000-8000-000000000007') $$,
  'P0002', 'chat session 5e000000-0000-4000-8000-000000000007 not found',
  'A user whose user_metadata says admin cannot read the messages of others.'
);

reset role;
select tests.authenticate_as('client');
select throws_ok(
  $$ select * from public.get_chat_messages('5e000000-0000-4000-8000-000000000007', 0) $$,
  '22023', 'limit must be between 1 and 1000',
  'A page of zero messages is refused.'
);
select throws_ok(
  $$ select * from public.get_chat_messages('5e000000-0000-4000-8000-000000000007', 1001) $$,
  '22023', 'limit must be between 1 and 1000',
  'A page of more than 1000 messages is refused.'
);
select throws_ok(
  $$ select * from public.get_chat_messages('5e000000-0000-4000-8000-000000000007', null) $$,
  '22023', 'limit must be between 1 and 1000',
  'A null page size is refused.'
);
select throws_ok(
  $$ select * from public.get_chat_messages('5e000000-0000-4000-8000-000000000007', 10, -1) $$,
  '22023', 'offset must not be negative',
  'A negative offset is refused.'
);
select throws_ok(
  $$ select * from public.get_chat_messages('5e000000-0000-4000-8000-000000000007',
       before_id => '3e000000-0000-4000-8000-000000000001') $$,
  '22023', 'before_id is not a message of this session',
  'A keyset cursor must be a message of the same session.'
);
select results_eq(
  $$ select content from public.get_chat_messages('5e000000-0000-4000-8000-000000000007') $$,
  $$ values ('P6'::text), ('P5'), ('P4'), ('P3'), ('P2'), ('P1') $$,
  'A page lists messages newest first; of two simultaneous messages the later one by seq comes first.'
);
select results_eq(
  $$ select content from public.get_chat_messages('5e000000-0000-4000-8000-000000000007', 2) $$,
  $$ values ('P6'::text), ('P5') $$,
  'max_rows limits the page.'
);
select results_eq(
  $$ select content from public.get_chat_messages('5e000000-0000-4000-8000-000000000007', 2, 2) $$,
  $$ values ('P4'::text), ('P3') $$,
  'skip_rows pages with an offset.'
);
select results_eq(
  $$ select content from public.get_chat_messages('5e000000-0000-4000-8000-000000000007',
       before_id => '3e000000-0000-4000-8000-0000000000a4') $$,
  $$ values ('P3'::text), ('P2'), ('P1') $$,
  'before_id pages by keyset: a message at the same instant but earlier by seq is on the next page.'
);
select results_eq(
  $$ select content from public.get_chat_messages('5e000000-0000-4000-8000-000000000007', 1,
       before_id => '3e000000-0000-4000-8000-0000000000a3') $$,
  $$ values ('P2'::text) $$,
  'before_id with max_rows gives the next page after the cursor.'
);
select results_eq(
  $$ select content from public.get_chat_messages('5e000000-0000-4000-8000-000000000007',
       before => (select created_at from public.chat_messages where id = '3e000000-0000-4000-8000-0000000000a4')) $$,
  $$ values ('P2'::text), ('P1') $$,
  'before lists only messages strictly older than the timestamp.'
);
select results_eq(
  $$ select id from public.get_chat_messages('5e000000-0000-4000-8000-000000000002') $$,
  $$ values ('3e000000-0000-4000-8000-000000000003'::uuid) $$,
  'The messages of a closed session can still be read.'
);
reset role;
select tests.authenticate_as('reader');
select results_eq(
  $$ select count(*)::int from public.get_chat_messages('5e000000-0000-4000-8000-000000000007', 1000) $$,
  array[6],
  'The reader participant reads the same messages.'
);

-- ---------------------------------------------------------------- one session row
-- The session functions share one row type; find_my_chat_sessions adds total_count.
reset role;
select is(
  (
    select prorettype::regtype::text from pg_proc
    where oid = 'public.get_chat_session(uuid)'::regprocedure
  ),
  'chat_session_summary',
  'get_chat_session returns the chat_session_summary type.'
);
select is(
  (
    select prorettype::regtype::text from pg_proc
    where oid = 'public.list_my_chat_sessions(integer, integer)'::regprocedure
  ),
  'chat_session_summary',
  'list_my_chat_sessions returns the chat_session_summary type.'
);
select is(
  (
    select array_agg(a.attname::text || ' ' || format_type(a.atttypid, a.atttypmod) order by a.attnum)
    from pg_attribute as a
    where a.attrelid = 'public.chat_session_summary'::regclass and a.attnum > 0 and not a.attisdropped
  )
  || array['total_count bigint'],
  (
    select array_agg(x.n || ' ' || format_type(x.t, null) order by x.o)
    from pg_proc as p,
      unnest(p.proargnames, p.proallargtypes, p.proargmodes) with ordinality as x (n, t, m, o)
    where p.oid = 'public.find_my_chat_sessions(text, text, text, integer, integer)'::regprocedure
      and x.m = 't'
  ),
  'find_my_chat_sessions returns the chat_session_summary columns, then total_count.'
);

-- The summary checks participation against the stored session, never the row it is
-- given: an outsider who passes S1's row, even one that names them a participant, learns
-- nothing of its messages.
select
  (
    select s::text from public.chat_sessions as s
    where s.id = '5e000000-0000-4000-8000-000000000001')
    as s1_row,
  (
    select jsonb_populate_record(s, jsonb_build_object('participants', array[tests.uid('outsider')]))::text
    from public.chat_sessions as s
    where s.id = '5e000000-0000-4000-8000-000000000001'
  ) as forged_s1
\gset
select tests.authenticate_as('outsider');
select results_eq(
  format(
    $$ select unread_count, last_message from chat_private.session_summary(%L::public.chat_sessions)
       union all
       select unread_count, last_message from chat_private.session_summary(%L::public.chat_sessions) $$,
    :'s1_row', :'forged_s1'
  ),
  $$ values (0::bigint, null::jsonb), (0::bigint, null::jsonb) $$,
  'session_summary tells an outsider nothing about a session, even from a forged row that lists them.'
);
reset role;

select * from finish();
rollback;
