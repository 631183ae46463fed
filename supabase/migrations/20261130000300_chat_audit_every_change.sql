-- Every column change of every chat table, and of chat-files objects, writes an audit
-- row, whoever makes it (the service role and the owner included), naming each changed
-- column with its old and new value (message content: its lengths only). Before, only
-- some columns were watched: a message's sender_id set to null, a session's closed_at
-- rewritten, an object's metadata.mimetype or owner changed left no trace.
--
-- The one change that is not audited is the system's own touch of a session's
-- last_message_at (and the updated_at that follows it) when a message arrives: the touch
-- marks itself with the transaction-local setting chat.session_touch, and a statement
-- carrying the mark that changes anything else is audited all the same.
--
-- A message's sender_id can no longer be changed or emptied by an update; only the
-- foreign key's own action when the sender's auth user is deleted empties it (audited).

-- ---------------------------------------------------------------- the changed columns
-- {column: {from, to}} for each column whose value differs, except those ignored.
create or replace function chat_private.changed_columns(
  old_row jsonb,
  new_row jsonb,
  ignored text[]
) returns jsonb
language plpgsql
immutable
set search_path = ''
as $$
begin
  return coalesce(
    (
      select jsonb_object_agg(n.key, jsonb_build_object('from', o.value, 'to', n.value))
      from jsonb_each(new_row) as n
      left join jsonb_each(old_row) as o on o.key = n.key
      where o.value is distinct from n.value
        and n.key <> all(ignored)
    ),
    '{}'::jsonb
  );
end
$$;

revoke all on function chat_private.changed_columns(jsonb, jsonb, text[]) from public;

-- ---------------------------------------------------------------- sessions
create or replace function chat_private.touch_session_on_message() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform set_config('chat.session_touch', 'on', true);
  update public.chat_sessions
  set last_message_at = greatest(coalesce(last_message_at, new.created_at), new.created_at)
  where id = new.session_id;
  perform set_config('chat.session_touch', 'off', true);
  return null;
end
$$;

create or replace function chat_private.audit_session_update() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  _ignored text [] := array['updated_at'];
  _changes jsonb;
  _action text := 'session.updated';
begin
  if current_setting('chat.session_touch', true) = 'on' then
    _ignored := _ignored || 'last_message_at'::text;
  end if;
  _changes := chat_private.changed_columns(to_jsonb(old), to_jsonb(new), _ignored);
  if _changes = '{}'::jsonb then
    return null;
  end if;
  if old.status = 'active' and new.status = 'closed' then
    _action := 'session.closed';
  elsif old.status = 'closed' and new.status = 'active' then
    _action := 'session.reopened';
  end if;
  perform chat_private.append_audit(_action, new.id, null, _changes);
  return null;
end
$$;

drop trigger chat_sessions_audit_update on public.chat_sessions;
create trigger chat_sessions_audit_update
after update on public.chat_sessions
for each row execute function chat_private.audit_session_update();

-- ---------------------------------------------------------------- messages
create or replace function chat_private.audit_message_update() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  _changes jsonb;
begin
  _changes := chat_private.changed_columns(
    to_jsonb(old) - 'content', to_jsonb(new) - 'content', array[]::text []
  );
  if old.content is distinct from new.content then
    -- Content outlives nothing in the audit: its lengths only.
    _changes := _changes || jsonb_build_object('content', jsonb_build_object(
      'from_length', char_length(old.content), 'to_length', char_length(new.content)
    ));
  end if;
  if _changes = '{}'::jsonb then
    return null;
  end if;
  perform chat_private.append_audit(
    case when new.sender_id is null and old.sender_id is not null
      then 'message.sender_removed' else 'message.updated' end,
    new.session_id, new.id, _changes
  );
  return null;
end
$$;

drop trigger chat_messages_audit_update on public.chat_messages;
create trigger chat_messages_audit_update
after update on public.chat_messages
for each row execute function chat_private.audit_message_update();

create or replace function chat_private.guard_message_update() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.id is distinct from old.id
    or new.seq is distinct from old.seq
    or new.session_id is distinct from old.session_id
    or new.created_at is distinct from old.created_at
    or new.xact_id is distinct from old.xact_id then
    raise exception 'chat message id, seq, session_id, sender_id and created_at cannot change'
      using errcode = '42501';
  end if;
  -- The sender is fixed. Only the foreign key's action on deleting the auth user (a
  -- trigger inside a trigger) may empty it.
  if new.sender_id is distinct from old.sender_id
    and not (new.sender_id is null and pg_trigger_depth() > 1) then
    raise exception 'chat message id, seq, session_id, sender_id and created_at cannot change'
      using errcode = '42501';
  end if;
  return new;
end
$$;

-- ---------------------------------------------------------------- read state
create or replace function chat_private.audit_read_state_update() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  _changes jsonb;
begin
  _changes := chat_private.changed_columns(to_jsonb(old), to_jsonb(new), array['updated_at']);
  if _changes = '{}'::jsonb then
    return null;
  end if;
  perform chat_private.append_audit(
    case when old.last_read_seq is distinct from new.last_read_seq
      then 'read_state.advanced' else 'read_state.updated' end,
    new.session_id, new.last_read_message_id,
    _changes || jsonb_build_object(
      'user_id', new.user_id,
      'last_read_seq', new.last_read_seq,
      'previous_message_id', old.last_read_message_id
    )
  );
  return null;
end
$$;

drop trigger chat_read_state_audit_update on public.chat_read_state;
create trigger chat_read_state_audit_update
after update on public.chat_read_state
for each row execute function chat_private.audit_read_state_update();

-- ---------------------------------------------------------------- chat-files objects
create or replace function chat_private.audit_chat_file_update() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  _changes jsonb;
  _folder text := (storage.foldername(new.name))[1];
begin
  _changes := chat_private.changed_columns(
    to_jsonb(old), to_jsonb(new), array['updated_at', 'last_accessed_at', 'path_tokens']
  );
  if _changes = '{}'::jsonb then
    return null;
  end if;
  perform chat_private.append_audit(
    case
      when old.name is distinct from new.name then 'file.moved'
      when old.version is distinct from new.version then 'file.replaced'
      else 'file.updated'
    end,
    case
      when _folder ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
        then _folder::uuid
    end,
    null,
    _changes || jsonb_build_object(
      'bucket', new.bucket_id,
      'name', new.name,
      'previous_name', old.name,
      'size', new.metadata -> 'size',
      'mimetype', new.metadata ->> 'mimetype'
    )
  );
  return null;
end
$$;

-- Any change of an object that is or was in chat-files (moving it out of the bucket
-- included).
drop trigger chat_files_audit_update on storage.objects;
create trigger chat_files_audit_update
after update on storage.objects
for each row
when (new.bucket_id = 'chat-files' or old.bucket_id = 'chat-files')
execute function chat_private.audit_chat_file_update();

revoke all on function chat_private.audit_session_update() from public;
revoke all on function chat_private.audit_message_update() from public;
revoke all on function chat_private.audit_read_state_update() from public;
revoke all on function chat_private.audit_chat_file_update() from public;
