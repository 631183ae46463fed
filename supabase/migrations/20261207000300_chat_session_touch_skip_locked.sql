-- A message written outside the relay no longer waits for its session's row.
--
-- Such a message (supabase-js, PostgREST, SQL as a user) moves its session's
-- last_message_at from a trigger, which locked the session's row until commit. Two people
-- writing to one session at once queued on that lock, and the one holding it also waits
-- at commit for the server-wide lock every notifying transaction takes (the NOTIFY that
-- wakes the relays): under load the waits fed each other, and at 500 inserts a second
-- over 100 sessions the median delivery went from 7 ms to 5 s (wait events: most
-- backends on the row lock or the NOTIFY lock).
--
-- Now the touch takes the row only when no other transaction is updating it (FOR NO KEY
-- UPDATE SKIP LOCKED: the key-share locks of other inserts' foreign-key checks do not
-- count, as they never blocked the update either) and only when it would move
-- last_message_at forward. A transaction that finds the row taken leaves
-- last_message_at to the one holding it, whose own message is at most that overlap older:
-- under concurrent writes to one session, last_message_at may trail the newest message by
-- milliseconds until the next message moves it. The relay's own writes touch their
-- sessions once per group, unchanged. A transaction that locked the row itself (closing a
-- session inserts its system message) still moves it: its own lock is never skipped.

create or replace function chat_private.touch_session_on_message()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform set_config('chat.session_touch', 'on', true);
  update public.chat_sessions as s
  set last_message_at = new.created_at
  where s.id = (
    select l.id from public.chat_sessions as l
    where l.id = new.session_id
      and (l.last_message_at is null or l.last_message_at < new.created_at)
    for no key update skip locked
  );
  perform set_config('chat.session_touch', 'off', true);
  return null;
end
$$;
