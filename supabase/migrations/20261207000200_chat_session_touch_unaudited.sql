-- A session's last_message_at moving with its messages no longer calls the audit trigger.
--
-- Each group of messages the relay stores ends by moving its sessions' last_message_at
-- (chat.session_touch on). chat_private.audit_session_update then turned both row
-- versions into JSON and compared them key by key, only to find nothing to record: about
-- 30 us per touched session, under the session's row lock. The trigger's condition now
-- says the same without the call: during a touch, an update that changes nothing but
-- last_message_at and updated_at is not audited. Any other change (a title, a status,
-- made while chat.session_touch is set or not) still reaches the trigger, which
-- records it as before: setting chat.session_touch cannot hide a change.

drop trigger chat_sessions_audit_update on public.chat_sessions;

create trigger chat_sessions_audit_update
after update on public.chat_sessions
for each row
when (
  current_setting('chat.session_touch', true) is distinct from 'on'
  or to_jsonb(old) - '{last_message_at,updated_at}'::text[]
  is distinct from to_jsonb(new) - '{last_message_at,updated_at}'::text[]
)
execute function chat_private.audit_session_update();
