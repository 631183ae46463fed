-- The idempotency key of a message (sender_id, session_id, client_message_id) is the index
-- every lookup by sender uses, so a send never reads its sender's whole history.
begin;
set local search_path = extensions, public;
select plan(5);

select tests.create_chat_fixture();

select tests.create_scans_during();

select is(
  (
    select array_agg(a.attname order by k.ord)
    from pg_constraint as c
    cross join lateral unnest(c.conkey) with ordinality as k (attnum, ord)
    inner join pg_attribute as a on c.conrelid = a.attrelid and k.attnum = a.attnum
    where c.conrelid = 'public.chat_messages'::regclass
      and c.conname = 'chat_messages_client_message_key' and c.contype = 'u'
  ),
  array['sender_id', 'session_id', 'client_message_id']::name[],
  'The idempotency key of a message is unique on (sender_id, session_id, client_message_id).'
);

-- Another index leading with sender_id would be one more to update on every insert, and a
-- cheaper-looking plan for the idempotency lookup while the table is small.
select is(
  (
    select array_agg(i.indexrelid::regclass::text)
    from pg_index as i
    inner join pg_attribute as a on i.indrelid = a.attrelid and a.attnum = i.indkey[0]
    where i.indrelid = 'public.chat_messages'::regclass and a.attname = 'sender_id'
  ),
  array['chat_messages_client_message_key'],
  'The only index of chat_messages that leads with sender_id is the idempotency key.'
);

select tests.authenticate_as('client');

-- Eight sends in one statement: PL/pgSQL plans the lookup once per connection and keeps a
-- generic plan from the sixth call. Each send probes the key twice: the retry lookup, then
-- the insert's ON CONFLICT check.
select is(
  pg_temp.scans_during(
    $$ select count(public.send_chat_message(
         '5e000000-0000-4000-8000-000000000001', 'keyed message ' || g,
         client_message_id => 'keyed-' || g))
       from generate_series(1, 8) as g $$,
    'public.chat_messages_client_message_key'
  ),
  16::bigint,
  'Each send looks its retry up by the idempotency key (and the insert checks it once).'
);

select is(
  (
    select (public.send_chat_message(
      '5e000000-0000-4000-8000-000000000001', 'sent again', client_message_id => 'keyed-3'
    )).content
  ),
  'keyed message 3',
  'A retried send returns the row its first attempt stored.'
);

select is(
  (
    select count(*) from public.chat_messages
    where session_id = '5e000000-0000-4000-8000-000000000001' and client_message_id like 'keyed-%'
  ),
  8::bigint,
  'Each keyed send is stored once.'
);

select * from finish();
rollback;
