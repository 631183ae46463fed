-- Storage object names are {session_id}/{user_id}/{name}: a segment that is empty, '.' or
-- '..' could make one path name another folder (<session>/<uid>/../../<other>/<uid>/x),
-- so such names are refused by the storage policies and by the file-message guard.

create or replace function chat_private.is_clean_object_name(object_name text) returns boolean
language sql
immutable
set search_path = ''
as $$
  select object_name is not null
    and not (string_to_array(object_name, '/') && array['', '.', '..'])
$$;

comment on function chat_private.is_clean_object_name(text) is
'True when no segment of the name is empty, "." or "..".';

-- The caller takes part in the session named by the object's first folder.
create or replace function chat_private.can_access_chat_object(object_name text) returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  _folder text := (storage.foldername(object_name))[1];
begin
  if not chat_private.is_clean_object_name(object_name)
    or _folder is null
    or _folder !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
    return false;
  end if;
  return exists (
    select 1 from public.chat_sessions as s
    where s.id = _folder::uuid
      and s.participants @> array[(select auth.uid())]
  );
end
$$;

-- The caller may store here: an active session they take part in, under their own folder.
create or replace function chat_private.can_upload_chat_object(object_name text) returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  _folders text[] := storage.foldername(object_name);
begin
  if not chat_private.is_clean_object_name(object_name)
    or cardinality(_folders) < 2
    or _folders[1] !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
    or _folders[2] is distinct from (select auth.uid())::text then
    return false;
  end if;
  return exists (
    select 1 from public.chat_sessions as s
    where s.id = _folders[1]::uuid
      and s.status = 'active'
      and s.participants @> array[(select auth.uid())]
  );
end
$$;

-- The file-message guard (see the direct write guards migration), now also refusing
-- unclean names, and applying to every API caller, a token without a role claim included.
create or replace function chat_private.guard_message_insert() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  _path text;
  _object jsonb;
begin
  if not chat_private.is_api_caller() then
    return new;
  end if;
  new.metadata := coalesce(new.metadata, '{}'::jsonb) - 'url';
  if new.type in ('audio', 'image', 'file') then
    _path := new.metadata ->> 'storage_path';
    if _path is null then
      raise exception '% messages need metadata.storage_path', new.type using errcode = '22023';
    end if;
    if not chat_private.is_clean_object_name(_path)
      or (storage.foldername(_path))[1] is distinct from new.session_id::text
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

revoke all on function chat_private.is_clean_object_name(text) from public;
grant execute on function chat_private.is_clean_object_name(text) to authenticated, service_role;
