-- One BEFORE INSERT trigger on chat_messages for the checks that ran as four.
--
-- A message insert ran four row triggers before the row was stored: the contact filter,
-- the direct-write guard, the moderation checks and the stamp. Each trigger is a function
-- call with its own search_path (a configuration save and restore), each asked again
-- whether the caller is an API user (chat_private.is_api_caller, a SQL function planned
-- anew on every call), and the moderation checks read the suspensions and the session in
-- two more calls. Measured in a loop of groups of ten relay-written messages, the four
-- cost about 80 us per message. Here they are one function, in the same order, asking
-- once, and reading the suspension and the session's freeze in one statement.
--
-- What each check does is unchanged:
-- * contact filter (insert): as chat_private.filter_contacts, which now serves edits only;
-- * guard: an API user's metadata loses 'url'; a file message (audio, image, file) must
--   name the sender's own object in this session. That lookup reads storage.objects under
--   the caller's row-level security, so it stays in chat_private.guard_message_insert,
--   now fired only for file messages (after this trigger: a suspended sender or a frozen
--   session is refused before the file is looked at);
-- * moderation: a user's insert cannot be born deleted, redacted or edited, only a file
--   message names a stored file, a suspended sender and a frozen session are refused
--   (CHSUS through chat_private.raise_if_suspended, which words the message; CHFRZ);
-- * stamp: the writing transaction, and the server's clock for an API user's row.

create or replace function chat_private.before_message_insert()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  _role text := coalesce(auth.role(), '');
  _api boolean := current_user in ('authenticated', 'anon') or _role in ('authenticated', 'anon');
  _mode text;
  _allow text [];
  _matches text [];
  _suspended boolean;
  _frozen boolean;
begin
  if _api then
    -- The contact filter.
    if new.content is not null then
      select s.contact_filter, s.allow_domains into _mode, _allow
      from chat_private.moderation_settings as s where s.id;
      if _mode is not null and _mode <> 'off' then
        _matches := chat_private.contact_matches(new.content, _allow);
        if cardinality(_matches) > 0 then
          if _mode = 'block' then
            raise exception 'messages may not share phone numbers, e-mail addresses or links'
              using errcode = 'CHCIB';
          elsif _mode = 'mask' then
            new.content := chat_private.mask_contacts(new.content, _matches);
          else
            new.metadata := coalesce(new.metadata, '{}'::jsonb)
            || jsonb_build_object('contact_flagged', true);
          end if;
        end if;
      end if;
    end if;
    -- The guard: links are made by the service, never stored from a client.
    new.metadata := coalesce(new.metadata, '{}'::jsonb) - 'url';
    -- Moderation.
    new.deleted_at := null;
    new.deleted_reason := null;
    new.edited_at := null;
    if new.type not in ('audio', 'image', 'file') then
      new.metadata := new.metadata - 'storage_path';
    end if;
    select
      exists (
        select 1 from chat_private.suspensions as u
        where u.user_id = new.sender_id and (u.until is null or u.until > now())
      ),
      exists (
        select 1 from public.chat_sessions as s
        where s.id = new.session_id and s.frozen_at is not null
      )
    into _suspended, _frozen;
    if _suspended then
      perform chat_private.raise_if_suspended(new.sender_id);
    end if;
    if _frozen then
      raise exception 'this chat session is frozen: no new messages' using errcode = 'CHFRZ';
    end if;
  end if;
  -- The stamp.
  new.xact_id := pg_current_xact_id();
  if _role in ('authenticated', 'anon') then
    new.created_at := now();
  end if;
  return new;
end
$$;

comment on function chat_private.before_message_insert() is
'Every check before a message row is stored, in order: the contact filter, the guard, moderation (suspension, freeze), the stamp. File messages are then checked by guard_message_insert.';

revoke all on function chat_private.before_message_insert() from public;

drop trigger chat_messages_filter_contacts on public.chat_messages;
drop trigger chat_messages_moderate_insert on public.chat_messages;
drop trigger chat_messages_stamp_insert on public.chat_messages;
drop trigger chat_messages_guard_insert on public.chat_messages;

create trigger chat_messages_before_insert
before insert on public.chat_messages
for each row execute function chat_private.before_message_insert();

-- Fires after chat_messages_before_insert (triggers of one event fire in name order).
create trigger chat_messages_guard_insert
before insert on public.chat_messages
for each row when (new.type in ('audio', 'image', 'file'))
execute function chat_private.guard_message_insert();

create trigger chat_messages_filter_contacts
before update of content on public.chat_messages
for each row execute function chat_private.filter_contacts();
