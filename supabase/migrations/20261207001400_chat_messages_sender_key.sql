-- The idempotency key of a message leads with its sender, and the sender-only index goes.
--
-- send_chat_message looks a retried send up by (session_id, sender_id, client_message_id).
-- The unique key on those columns answers it in one probe, but while chat_messages was
-- small or had no statistics (a new project, or autovacuum not yet run) the planner found
-- the narrower chat_messages_sender_id index just as cheap, and PL/pgSQL kept that plan for
-- the life of the connection: every send then read every message its sender had ever
-- written (measured: 486 index entries per send after 100,000 messages, growing without
-- end). With the key leading with sender_id, one index serves both the idempotency lookup
-- and every lookup by sender (erasure, ON DELETE SET NULL from auth.users), so there is no
-- plan to get wrong, and each message insert updates one index fewer.
--
-- Lookups by session alone (unread counts, the session summary) use
-- chat_messages_session_created_seq, which leads with session_id.
--
-- On a large table this rebuilds the key's index under an ACCESS EXCLUSIVE lock, held to
-- the end of the migration: reads and writes of chat_messages wait for as long as the
-- build takes (0.9 s per million messages on two cores). A project with many millions of
-- messages can build the index first with CREATE UNIQUE INDEX CONCURRENTLY and attach it
-- (ADD CONSTRAINT ... UNIQUE USING INDEX) before applying this.

alter table public.chat_messages drop constraint chat_messages_client_message_key;

alter table public.chat_messages
add constraint chat_messages_client_message_key unique (sender_id, session_id, client_message_id);

drop index public.chat_messages_sender_id;

comment on constraint chat_messages_client_message_key on public.chat_messages is
'A send is stored once per (sender, session, client_message_id); leads with sender_id so that it also serves every lookup by sender.';
