-- Moderation, in SQL so that no client skips it (supabase-js straight to PostgREST meets
-- the same rules as the relay):
--
-- * A sender edits or deletes their own message within the edit window
--   (chat_private.moderation_settings.edit_window_s, written by the service from
--   EDIT_WINDOW_S). A deleted message stays as a tombstone (deleted_reason 'sender'): id,
--   sender, time, no content, no file (queued for removal from the store).
-- * An admin redacts any message with a reason (deleted_reason 'moderator').
-- * What a message said before an edit, a deletion or a redaction is kept for admins only
--   (chat_private.message_history) and goes with the message, or with its sender's account.
-- * An admin suspends a user from chat (until a time, or until lifted) and freezes a
--   session: their inserts are refused on every path (SQLSTATE CHSUS, CHFRZ); reading
--   stays allowed.
-- * Every change of a message's content or state notifies the relays (NOTIFY chat_events,
--   kind message_state: message_updated, message_deleted to the room) and, where Realtime
--   broadcasting is on, its session topic; suspensions notify too (kind suspended).
-- Errors: CHEDW edit window closed (409), CHDEL message deleted (409), CHSUS suspended
-- (403), CHFRZ session frozen (409).

-- ---------------------------------------------------------------- settings and tables
create table chat_private.moderation_settings (
  id boolean primary key default true,
  edit_window_s integer not null default 900,
  updated_at timestamptz not null default now(),
  constraint moderation_settings_single_row check (id),
  constraint moderation_settings_edit_window_check check (edit_window_s between 0 and 604800)
);

comment on table chat_private.moderation_settings is
'edit_window_s: how long after sending a sender may edit or delete a message (EDIT_WINDOW_S, written by the service at start).';

insert into chat_private.moderation_settings (id) values (true) on conflict (id) do nothing;

alter table public.chat_messages add column edited_at timestamptz;
comment on column public.chat_messages.edited_at is
'When the sender last edited the content; null if never.';

alter table public.chat_messages drop constraint chat_messages_deleted_check;
alter table public.chat_messages add constraint chat_messages_deleted_check check (
  (deleted_at is null) = (deleted_reason is null)
  and deleted_reason in ('erased', 'sender', 'moderator')
);
comment on column public.chat_messages.deleted_reason is
'Why it is a tombstone: erased (its sender''s account was deleted), sender (they deleted it), moderator (an admin redacted it).';

-- A reconnecting client asks what changed in place since the newest message it has.
create index chat_messages_changed on public.chat_messages (
  session_id, greatest(edited_at, deleted_at)
) where edited_at is not null or deleted_at is not null;

alter table public.chat_sessions add column frozen_at timestamptz;
comment on column public.chat_sessions.frozen_at is
'Set by an admin: nobody may post to the session until it is unfrozen (a disputed consultation).';

create table chat_private.message_history (
  id bigint generated always as identity primary key,
  message_id uuid not null references public.chat_messages (id) on delete cascade,
  session_id uuid not null,
  sender_id uuid references auth.users (id) on delete cascade,
  kind text not null,
  content text,
  metadata jsonb,
  reason text,
  actor_id uuid,
  created_at timestamptz not null default now(),
  constraint message_history_kind_check check (kind in ('edited', 'deleted', 'redacted'))
);

comment on table chat_private.message_history is
'What a message said before it was edited, deleted or redacted: admins only. Goes with the message, or with its sender''s account.';

create index message_history_message_id on chat_private.message_history (message_id, id);
create index message_history_sender_id on chat_private.message_history (sender_id);

create table chat_private.suspensions (
  user_id uuid primary key references auth.users (id) on delete cascade,
  until timestamptz,
  reason text not null,
  set_by uuid,
  set_at timestamptz not null default now(),
  constraint suspensions_reason_check check (char_length(reason) between 1 and 500)
);

comment on table chat_private.suspensions is
'Users suspended from chat: no message, typing or join until "until" (null: until lifted). Reading their history stays allowed.';

revoke all on chat_private.moderation_settings, chat_private.message_history,
chat_private.suspensions from public, anon, authenticated, service_role;
alter table chat_private.moderation_settings enable row level security;
alter table chat_private.message_history enable row level security;
alter table chat_private.suspensions enable row level security;

-- ---------------------------------------------------------------- helpers
create or replace function chat_private.suspended_until(target uuid) returns timestamptz
language sql
stable
security definer
set search_path = ''
as $$
  select coalesce(s.until, 'infinity'::timestamptz) from chat_private.suspensions as s
  where s.user_id = target and (s.until is null or s.until > now())
$$;

create or replace function chat_private.raise_if_suspended(target uuid) returns void
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  _until timestamptz := chat_private.suspended_until(target);
begin
  if _until is not null then
    raise exception '%', case
      when _until = 'infinity' then 'you are suspended from chat'
      else 'you are suspended from chat until '
        || to_char(_until at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
    end
      using errcode = 'CHSUS';
  end if;
end
$$;

-- Every insert by a user (the relay's group commit, PostgREST, SQL as authenticated):
-- refused while the user is suspended or the session frozen. A new message is never born a
-- tombstone or edited, and only a file message names a stored file (a deletion, an erasure
-- or a purge removes the file a message names).
create or replace function chat_private.moderate_message_insert() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if not chat_private.is_api_caller() then
    return new;
  end if;
  new.deleted_at := null;
  new.deleted_reason := null;
  new.edited_at := null;
  if new.type not in ('audio', 'image', 'file') then
    new.metadata := coalesce(new.metadata, '{}'::jsonb) - 'storage_path';
  end if;
  perform chat_private.raise_if_suspended(new.sender_id);
  if exists (
    select 1 from public.chat_sessions as s where s.id = new.session_id and s.frozen_at is not null
  ) then
    raise exception 'this chat session is frozen: no new messages' using errcode = 'CHFRZ';
  end if;
  return new;
end
$$;

create trigger chat_messages_moderate_insert
before insert on public.chat_messages
for each row execute function chat_private.moderate_message_insert();

-- The content or state of a message changed: the relays tell the room; the session's
-- Realtime topic hears it too. Not during an erasure (it sends user_erased instead).
create or replace function chat_private.notify_message_state() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  _event text := case when new.deleted_at is not null then 'message_deleted' else 'message_updated' end;
  _payload jsonb;
begin
  if coalesce(current_setting('chat.erasure', true), '') <> ''
    and chat_private.erasure_in_progress() then
    return null;
  end if;
  perform pg_notify(
    'chat_events',
    json_build_object('kind', 'message_state', 'id', new.id, 'session_id', new.session_id)::text
  );
  if coalesce((select r.broadcast from chat_private.realtime_settings as r where r.id), false)
    and to_regclass('realtime.messages') is not null then
    _payload := case
      when _event = 'message_deleted' then jsonb_build_object(
        'session_id', new.session_id, 'message_id', new.id,
        'deleted_at', to_char(new.deleted_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'reason', new.deleted_reason
      )
      else jsonb_build_object(
        'session_id', new.session_id, 'message_id', new.id, 'content', new.content,
        'edited_at', to_char(new.edited_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
      )
    end;
    perform chat_private.broadcast(_payload, _event, new.session_id);
  end if;
  return null;
end
$$;

create trigger chat_messages_state_notify
after update of content, deleted_at on public.chat_messages
for each row
when (old.content is distinct from new.content or old.deleted_at is distinct from new.deleted_at)
execute function chat_private.notify_message_state();

-- ---------------------------------------------------------------- sender: edit, delete
create or replace function chat_private.own_message_for_change(target_message_id uuid)
returns public.chat_messages
language plpgsql
security definer
set search_path = ''
as $$
declare
  _uid uuid := auth.uid();
  _row public.chat_messages;
  _window integer;
begin
  if _uid is null then
    raise exception 'not authenticated' using errcode = '28000';
  end if;
  select m.* into _row from public.chat_messages as m
  where m.id = target_message_id and m.sender_id = _uid
  for update;
  if not found or _row.type = 'system' then
    raise exception 'message % not found', target_message_id using errcode = 'P0002';
  end if;
  if _row.deleted_at is not null then
    raise exception 'this message was deleted' using errcode = 'CHDEL';
  end if;
  perform chat_private.raise_if_suspended(_uid);
  if exists (
    select 1 from public.chat_sessions as s where s.id = _row.session_id and s.frozen_at is not null
  ) then
    raise exception 'this chat session is frozen: no changes' using errcode = 'CHFRZ';
  end if;
  select s.edit_window_s into _window from chat_private.moderation_settings as s where s.id;
  if _row.created_at < now() - make_interval(secs => coalesce(_window, 900)) then
    raise exception 'messages can be changed for % seconds after they are sent', coalesce(_window, 900)
      using errcode = 'CHEDW';
  end if;
  return _row;
end
$$;

create or replace function chat_private.edit_message(target_message_id uuid, new_content text)
returns public.chat_messages
language plpgsql
security definer
set search_path = ''
as $$
declare
  _row public.chat_messages := chat_private.own_message_for_change(target_message_id);
begin
  if new_content is not distinct from _row.content then
    return _row;
  end if;
  insert into chat_private.message_history (message_id, session_id, sender_id, kind, content, actor_id)
  values (_row.id, _row.session_id, _row.sender_id, 'edited', _row.content, auth.uid());
  update public.chat_messages as m set content = new_content, edited_at = now()
  where m.id = _row.id
  returning m.* into _row;
  return _row;
end
$$;

create or replace function chat_private.tombstone(
  target public.chat_messages, reason text, note text
) returns public.chat_messages
language plpgsql
security definer
set search_path = ''
as $$
declare
  _row public.chat_messages;
begin
  insert into chat_private.message_history (
    message_id, session_id, sender_id, kind, content, metadata, reason, actor_id
  )
  values (
    target.id, target.session_id, target.sender_id,
    case when reason = 'moderator' then 'redacted' else 'deleted' end,
    target.content, target.metadata, note, auth.uid()
  );
  -- Only the sender's own file of this session (the path names both).
  if target.metadata ->> 'storage_path' like target.session_id || '/' || target.sender_id || '/%' then
    insert into chat_private.object_purges (storage_path, reason)
    values (target.metadata ->> 'storage_path', 'erased')
    on conflict (storage_path) do nothing;
  end if;
  update public.chat_messages as m
  set content = null, metadata = '{}'::jsonb, deleted_at = now(), deleted_reason = reason
  where m.id = target.id
  returning m.* into _row;
  return _row;
end
$$;

create or replace function chat_private.delete_message(target_message_id uuid)
returns public.chat_messages
language plpgsql
security definer
set search_path = ''
as $$
begin
  return chat_private.tombstone(chat_private.own_message_for_change(target_message_id), 'sender', null);
end
$$;

-- ---------------------------------------------------------------- admins
create or replace function chat_private.redact_message_as_admin(target_message_id uuid, reason text)
returns public.chat_messages
language plpgsql
security definer
set search_path = ''
as $$
declare
  _row public.chat_messages;
begin
  perform chat_private.require_admin('redact messages');
  if reason is null or char_length(btrim(reason)) = 0 or char_length(reason) > 500 then
    raise exception 'a redaction needs a reason of 1 to 500 characters' using errcode = '22023';
  end if;
  select m.* into _row from public.chat_messages as m where m.id = target_message_id for update;
  if not found or _row.type = 'system' then
    raise exception 'message % not found', target_message_id using errcode = 'P0002';
  end if;
  if _row.deleted_at is not null then
    raise exception 'this message was deleted' using errcode = 'CHDEL';
  end if;
  _row := chat_private.tombstone(_row, 'moderator', reason);
  perform chat_private.append_audit(
    'admin.message.redacted', _row.session_id, _row.id, jsonb_build_object('reason', reason)
  );
  return _row;
end
$$;

create or replace function chat_private.message_history_as_admin(target_message_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  _rows jsonb;
begin
  perform chat_private.require_admin('read a message''s history');
  select coalesce(jsonb_agg(jsonb_build_object(
    'kind', h.kind, 'content', h.content, 'metadata', h.metadata, 'reason', h.reason,
    'actor_id', h.actor_id, 'at', h.created_at
  ) order by h.id), '[]'::jsonb)
  into _rows
  from chat_private.message_history as h where h.message_id = target_message_id;
  perform chat_private.append_audit(
    'admin.message.history.read', null, target_message_id, jsonb_build_object('entries', jsonb_array_length(_rows))
  );
  return jsonb_build_object('message_id', target_message_id, 'history', _rows);
end
$$;

create or replace function chat_private.suspend_as_admin(
  target_user uuid, suspend_until timestamptz, reason text
) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  _row chat_private.suspensions;
begin
  perform chat_private.require_admin('suspend users');
  if not exists (select 1 from auth.users as u where u.id = target_user) then
    raise exception 'user % not found', target_user using errcode = 'P0002';
  end if;
  if reason is null or char_length(btrim(reason)) = 0 or char_length(reason) > 500 then
    raise exception 'a suspension needs a reason of 1 to 500 characters' using errcode = '22023';
  end if;
  if suspend_until is not null and suspend_until <= now() then
    raise exception 'until must be in the future (or null: until lifted)' using errcode = '22023';
  end if;
  insert into chat_private.suspensions as s (user_id, until, reason, set_by)
  values (target_user, suspend_until, reason, auth.uid())
  on conflict (user_id) do update
    set until = excluded.until, reason = excluded.reason, set_by = excluded.set_by, set_at = now()
  returning * into _row;
  perform chat_private.append_audit(
    'admin.user.suspended', null, null,
    jsonb_build_object('user_id', target_user, 'until', suspend_until, 'reason', reason)
  );
  perform pg_notify(
    'chat_events',
    json_build_object('kind', 'suspended', 'user_id', target_user, 'until', suspend_until)::text
  );
  return jsonb_build_object('user_id', target_user, 'suspended', true, 'until', _row.until, 'reason', _row.reason);
end
$$;

create or replace function chat_private.lift_suspension_as_admin(target_user uuid) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform chat_private.require_admin('lift suspensions');
  delete from chat_private.suspensions as s where s.user_id = target_user;
  perform chat_private.append_audit(
    'admin.user.suspension_lifted', null, null, jsonb_build_object('user_id', target_user)
  );
  return jsonb_build_object('user_id', target_user, 'suspended', false, 'until', null, 'reason', null);
end
$$;

create or replace function chat_private.freeze_session_as_admin(target_session_id uuid, frozen boolean)
returns public.chat_sessions
language plpgsql
security definer
set search_path = ''
as $$
declare
  _row public.chat_sessions;
begin
  perform chat_private.require_admin('freeze sessions');
  update public.chat_sessions as s
  set frozen_at = case when frozen then coalesce(s.frozen_at, now()) end
  where s.id = target_session_id
  returning s.* into _row;
  if not found then
    raise exception 'chat session % not found', target_session_id using errcode = 'P0002';
  end if;
  perform chat_private.append_audit(
    case when frozen then 'admin.session.frozen' else 'admin.session.unfrozen' end,
    target_session_id, null, '{}'::jsonb
  );
  perform pg_notify(
    'chat_events',
    json_build_object(
      'kind', 'session', 'op', 'update', 'id', _row.id, 'status', _row.status, 'frozen', frozen
    )::text
  );
  return _row;
end
$$;

create or replace function chat_private.set_edit_window(seconds integer) returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  if seconds is null or seconds not between 0 and 604800 then
    raise exception 'the edit window must be between 0 and 604800 seconds' using errcode = '22023';
  end if;
  update chat_private.moderation_settings as s set edit_window_s = seconds, updated_at = now()
  where s.id and s.edit_window_s is distinct from seconds;
end
$$;

-- ---------------------------------------------------------------- public functions
create or replace function public.edit_chat_message(message_id uuid, content text)
returns public.chat_messages
language sql
set search_path = ''
as $$
  select * from chat_private.edit_message(edit_chat_message.message_id, edit_chat_message.content)
$$;

comment on function public.edit_chat_message(uuid, text) is
'The sender changes their message''s content within the edit window (409 edit_window_closed after it).';

create or replace function public.delete_chat_message(message_id uuid)
returns public.chat_messages
language sql
set search_path = ''
as $$
  select * from chat_private.delete_message(delete_chat_message.message_id)
$$;

comment on function public.delete_chat_message(uuid) is
'The sender deletes their message within the edit window: it stays as a tombstone, its file goes.';

create or replace function public.admin_redact_chat_message(message_id uuid, reason text)
returns public.chat_messages
language sql
set search_path = ''
as $$
  select * from chat_private.redact_message_as_admin(
    admin_redact_chat_message.message_id, admin_redact_chat_message.reason
  )
$$;

create or replace function public.admin_chat_message_history(message_id uuid) returns jsonb
language sql
set search_path = ''
as $$
  select chat_private.message_history_as_admin(admin_chat_message_history.message_id)
$$;

create or replace function public.admin_suspend_chat_user(
  user_id uuid, suspend_until timestamptz default null, reason text default null
) returns jsonb
language sql
set search_path = ''
as $$
  select chat_private.suspend_as_admin(
    admin_suspend_chat_user.user_id, admin_suspend_chat_user.suspend_until,
    admin_suspend_chat_user.reason
  )
$$;

create or replace function public.admin_lift_chat_suspension(user_id uuid) returns jsonb
language sql
set search_path = ''
as $$
  select chat_private.lift_suspension_as_admin(admin_lift_chat_suspension.user_id)
$$;

create or replace function public.admin_freeze_chat_session(session_id uuid, frozen boolean)
returns public.chat_sessions
language sql
set search_path = ''
as $$
  select * from chat_private.freeze_session_as_admin(
    admin_freeze_chat_session.session_id, admin_freeze_chat_session.frozen
  )
$$;

revoke all on function chat_private.suspended_until(uuid), chat_private.raise_if_suspended(uuid),
chat_private.moderate_message_insert(), chat_private.notify_message_state(),
chat_private.own_message_for_change(uuid), chat_private.edit_message(uuid, text),
chat_private.tombstone(public.chat_messages, text, text), chat_private.delete_message(uuid),
chat_private.redact_message_as_admin(uuid, text), chat_private.message_history_as_admin(uuid),
chat_private.suspend_as_admin(uuid, timestamptz, text), chat_private.lift_suspension_as_admin(uuid),
chat_private.freeze_session_as_admin(uuid, boolean), chat_private.set_edit_window(integer),
public.edit_chat_message(uuid, text), public.delete_chat_message(uuid),
public.admin_redact_chat_message(uuid, text), public.admin_chat_message_history(uuid),
public.admin_suspend_chat_user(uuid, timestamptz, text), public.admin_lift_chat_suspension(uuid),
public.admin_freeze_chat_session(uuid, boolean)
from public, anon, authenticated, service_role;
-- Each checks its caller itself (the sender, the admin role).
grant execute on function chat_private.edit_message(uuid, text), chat_private.delete_message(uuid),
chat_private.redact_message_as_admin(uuid, text), chat_private.message_history_as_admin(uuid),
chat_private.suspend_as_admin(uuid, timestamptz, text), chat_private.lift_suspension_as_admin(uuid),
chat_private.freeze_session_as_admin(uuid, boolean),
public.edit_chat_message(uuid, text), public.delete_chat_message(uuid),
public.admin_redact_chat_message(uuid, text), public.admin_chat_message_history(uuid),
public.admin_suspend_chat_user(uuid, timestamptz, text), public.admin_lift_chat_suspension(uuid),
public.admin_freeze_chat_session(uuid, boolean) to authenticated;
grant execute on function chat_private.set_edit_window(integer), chat_private.suspended_until(uuid)
to service_role;
