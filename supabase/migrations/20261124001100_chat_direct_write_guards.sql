-- Rules the SQL functions apply must hold for direct writes too: browsers may insert into
-- chat_messages and chat_read_state through PostgREST (supabase-js) without the functions.
-- Both guards apply to the API roles only; the owner and the service role are trusted.

-- A file message points at an object its sender stored under this session; its size and
-- type are the object's, not the client's word. metadata.url is the server's signed link,
-- added when a message is read out: never stored.
create or replace function chat_private.guard_message_insert() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  _path text;
  _object jsonb;
begin
  if coalesce(auth.role(), '') not in ('authenticated', 'anon') then
    return new;
  end if;
  new.metadata := coalesce(new.metadata, '{}'::jsonb) - 'url';
  if new.type in ('audio', 'image', 'file') then
    _path := new.metadata ->> 'storage_path';
    if _path is null then
      raise exception '% messages need metadata.storage_path', new.type using errcode = '22023';
    end if;
    if (storage.foldername(_path))[1] is distinct from new.session_id::text
      or (storage.foldername(_path))[2] is distinct from new.sender_id::text then
      raise exception 'metadata.storage_path is not a file you uploaded to this session'
        using errcode = '22023';
    end if;
    select o.metadata into _object from storage.objects as o
    where o.bucket_id = 'chat-files' and o.name = _path;
    if not found then
      raise exception 'metadata.storage_path is not a file you uploaded to this session'
        using errcode = '22023';
    end if;
    if _object ? 'size' then
      new.metadata := jsonb_set(new.metadata, '{size_bytes}', _object -> 'size');
    end if;
    if _object ? 'mimetype' then
      new.metadata := jsonb_set(new.metadata, '{mime_type}', _object -> 'mimetype');
    end if;
  end if;
  return new;
end
$$;

create trigger chat_messages_guard_insert
before insert on public.chat_messages
for each row execute function chat_private.guard_message_insert();

-- A read cursor names a message of its session; its position is that message's, and it
-- never moves backwards (so read_count in messages_read is what really became read).
create or replace function chat_private.guard_read_state() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  _at timestamptz;
  _seq bigint;
begin
  if coalesce(auth.role(), '') not in ('authenticated', 'anon') then
    return new;
  end if;
  select m.created_at, m.seq into _at, _seq from public.chat_messages as m
  where m.id = new.last_read_message_id and m.session_id = new.session_id;
  if not found then
    return new;  -- not a visible message of this session: RLS or the foreign key refuses
  end if;
  new.last_read_at := _at;
  new.last_read_seq := _seq;
  new.updated_at := now();
  if tg_op = 'UPDATE' and (_at, _seq) < (old.last_read_at, old.last_read_seq) then
    raise exception 'a read cursor cannot move backwards' using errcode = '22023';
  end if;
  return new;
end
$$;

create trigger chat_read_state_guard
before insert or update on public.chat_read_state
for each row execute function chat_private.guard_read_state();

revoke all on function chat_private.guard_message_insert() from public;
revoke all on function chat_private.guard_read_state() from public;
