-- Private bucket chat-files: objects at {session_id}/{user_id}/{name}, for participants only.
-- Size and MIME limits are enforced by hosted Storage (and by our upload worker locally).

insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values (
  'chat-files',
  'chat-files',
  false,
  10485760,
  array[
    'audio/wav', 'audio/x-wav', 'audio/wave', 'audio/mpeg', 'audio/ogg', 'audio/webm',
    'image/jpeg', 'image/png', 'image/gif', 'image/webp',
    'application/pdf', 'text/plain'
  ]
)
on conflict (id) do update
  set public = excluded.public,
    file_size_limit = excluded.file_size_limit,
    allowed_mime_types = excluded.allowed_mime_types;

-- The caller takes part in the session named by the object's first folder.
-- Takes text: a folder that is not a UUID is simply not a session.
create or replace function chat_private.can_access_chat_object(object_name text) returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  _folder text := (storage.foldername(object_name))[1];
begin
  if _folder is null
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
  if cardinality(_folders) < 2
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

revoke all on function chat_private.can_access_chat_object(text) from public;
revoke all on function chat_private.can_upload_chat_object(text) from public;
grant execute on function chat_private.can_access_chat_object(text) to authenticated;
grant execute on function chat_private.can_upload_chat_object(text) to authenticated;

create policy "Chat files are readable by session participants"
on storage.objects for select
to authenticated
using (bucket_id = 'chat-files' and chat_private.can_access_chat_object(name));

create policy "Participants can upload chat files to their own folder"
on storage.objects for insert
to authenticated
with check (bucket_id = 'chat-files' and chat_private.can_upload_chat_object(name));

create policy "Uploaders can delete their own chat files"
on storage.objects for delete
to authenticated
using (
  bucket_id = 'chat-files'
  and (storage.foldername(name))[2] = (select auth.uid())::text
  and chat_private.can_access_chat_object(name)
);
