-- The full-text index of message content keeps its pending list small: an insert never
-- merges more than 64 kB of pending entries into the index (a bounded stall), and the
-- pending list is kept (fastupdate on: the cheaper insert).
begin;
set local search_path = extensions, public;
select plan(3);

select tests.create_chat_fixture();

select is(
  (
    select c.reloptions
    from pg_class as c
    where c.oid = 'public.chat_messages_content_fts'::regclass
  ),
  array['gin_pending_list_limit=64']::text[],
  'The content index merges its pending entries every 64 kB, with fastupdate left on.'
);

-- 3,000 messages with four words of their own each (triggers off for speed: the index
-- is maintained whatever the triggers do). At the default 4 MB limit their entries would
-- all still be pending (about 100 pages); at 64 kB at most 8 pages are pending at a time.
set local session_replication_role = replica;
insert into public.chat_messages (session_id, sender_id, content)
select
  '5e000000-0000-4000-8000-000000000001',
  tests.uid('client'),
  'consultation note ' || md5(i::text) || ' ' || md5((-i)::text) || ' '
  || translate(md5((i * 7)::text), '0123456789', 'ghijklmnop') || ' '
  || translate(md5((i * 13)::text), '0123456789', 'qrstuvwxyz')
from generate_series(1, 3000) as i;
set local session_replication_role = origin;

select cmp_ok(
  gin_clean_pending_list('public.chat_messages_content_fts'::regclass),
  '<=',
  8::bigint,
  'After 3,000 messages of new words, at most 64 kB (8 pages) of entries were pending.'
);

select is(
  (
    select count(*)::integer from public.chat_messages
    where to_tsvector('simple', coalesce(content, '')) @@ to_tsquery('simple', md5('2999'))
  ),
  1,
  'Search finds a word of a message written among them.'
);

select * from finish();
rollback;
