-- Message search's full-text index merges its pending entries in small steps.
--
-- chat_messages_content_fts is a GIN index. By default GIN collects new entries in a
-- pending list and merges them into the index when the list passes gin_pending_list_limit
-- (4 MB): the insert that crosses the limit does the merge for every message since the
-- last one, inside its own transaction. With a varied vocabulary that is a stall of about
-- 85 ms every ten thousand messages or so (measured here: 60,000 one-row inserts with a
-- new word each, the longest 84 ms), and it lands on one send, and, in the relay, on every
-- send of its group and of the groups emitted after it. With fastupdate off there is no
-- pending list, but every insert then costs about 75 % more in the index (53 against 30 us).
--
-- A 64 kB limit keeps the pending list (the same amortised cost as the default: 30 us an
-- insert) and bounds a merge to what 64 kB holds: the longest insert of the same 60,000
-- was 1.2 ms at the 99.9th percentile. Search reads the pending list as before; VACUUM
-- still empties it too.
alter index public.chat_messages_content_fts set (gin_pending_list_limit = 64);

-- Merge what is pending now, here, rather than in the next send.
select gin_clean_pending_list('public.chat_messages_content_fts'::regclass);
