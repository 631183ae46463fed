-- Reading messages: one primary-key lookup of the message's session per row read, instead
-- of the set of every session the reader takes part in.
--
-- The policy used `session_id in (select chat_private.my_session_ids())`: every statement
-- that read messages under RLS first collected all of the reader's sessions (a reader in
-- 1,000 sessions: 1,000 session rows for a 50-message page, about 0.6 ms against 0.1 ms
-- for the same page as the service role). The correlated EXISTS below looks up the one
-- session of each row read through chat_sessions' primary key. OFFSET 0 keeps PostgreSQL
-- from turning the EXISTS back into a hashed set of all the reader's sessions (it does so
-- for a plain EXISTS); the session row's own policy applies inside, as for any read.
-- Same rows visible as before: sessions the caller takes part in.

drop policy "Messages are readable by session participants" on public.chat_messages;

create policy "Messages are readable by session participants"
on public.chat_messages for select
to authenticated
using (
  exists (
    select 1
    from public.chat_sessions as s
    where
      s.id = chat_messages.session_id
      and s.participants @> array[(select auth.uid())]
    offset 0  -- noqa: AM09
  )
);
