-- Exports (the rights of access and portability): a user asks for their data, an admin for
-- any user's; the service builds one archive in the background and keeps it for a day.
-- One export per user at a time. The archive holds what the user can read (built under
-- their RLS), so these functions only record requests and answer who may see them.

-- ---------------------------------------------------------------- tables
create table chat_private.exports (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  requested_by uuid not null,
  status text not null default 'pending',
  created_at timestamptz not null default now(),
  started_at timestamptz,
  heartbeat_at timestamptz,
  finished_at timestamptz,
  expires_at timestamptz,
  sessions integer,
  messages integer,
  files integer,
  archive_bytes bigint,
  error text,
  constraint exports_status_check check (
    status in ('pending', 'running', 'ready', 'failed', 'expired')
  ),
  constraint exports_error_check check (char_length(error) <= 500)
);

comment on table chat_private.exports is
'Data export requests and their archives (DATA_DIR/exports/<id>.zip on the service), one pending or running per user.';
comment on column chat_private.exports.requested_by is
'The user themselves, or the admin who asked for it (who may then download it).';
comment on column chat_private.exports.heartbeat_at is
'Moved by the relay building the archive; a running export whose heartbeat stops is built again by the lifecycle leader.';

create unique index exports_one_running on chat_private.exports (user_id)
where status in ('pending', 'running');
create index exports_user_id on chat_private.exports (user_id, created_at desc);
create index exports_requested_by on chat_private.exports (requested_by);

revoke all on chat_private.exports from public, anon, authenticated, service_role;
alter table chat_private.exports enable row level security;

-- ---------------------------------------------------------------- helpers
create or replace function chat_private.export_json(entry chat_private.exports) returns jsonb
language sql
immutable
set search_path = ''
as $$
  select jsonb_build_object(
    'id', entry.id,
    'user_id', entry.user_id,
    'requested_by', entry.requested_by,
    'status', entry.status,
    'created_at', entry.created_at,
    'started_at', entry.started_at,
    'finished_at', entry.finished_at,
    'expires_at', entry.expires_at,
    'sessions', entry.sessions,
    'messages', entry.messages,
    'files', entry.files,
    'archive_bytes', entry.archive_bytes,
    'error', entry.error
  )
$$;

create or replace function chat_private.new_export(target_user uuid, requester uuid)
returns chat_private.exports
language plpgsql
security definer
set search_path = ''
as $$
declare
  _row chat_private.exports;
begin
  insert into chat_private.exports (user_id, requested_by)
  values (target_user, requester)
  returning * into _row;
  return _row;
exception when unique_violation then
  raise exception 'an export of this user''s data is already being prepared'
    using errcode = '55000';
end
$$;

-- ---------------------------------------------------------------- public functions
create or replace function chat_private.request_export() returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  _uid uuid := auth.uid();
  _row chat_private.exports;
begin
  if _uid is null then
    raise exception 'not authenticated' using errcode = '28000';
  end if;
  _row := chat_private.new_export(_uid, _uid);
  perform chat_private.append_audit('export.requested', null, null, jsonb_build_object('export_id', _row.id));
  return chat_private.export_json(_row);
end
$$;

create or replace function public.request_chat_export() returns jsonb
language sql
set search_path = ''
as $$
  select chat_private.request_export()
$$;

comment on function public.request_chat_export() is
'Ask for an archive of your chat data (sessions, messages you can read, your files); 409 while one is being prepared.';

create or replace function chat_private.request_export_as_admin(target_user uuid) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  _row chat_private.exports;
begin
  perform chat_private.require_admin('export another user''s data');
  if not exists (select 1 from auth.users as u where u.id = target_user) then
    raise exception 'user % not found', target_user using errcode = 'P0002';
  end if;
  _row := chat_private.new_export(target_user, auth.uid());
  perform chat_private.append_audit(
    'admin.export.requested', null, null,
    jsonb_build_object('export_id', _row.id, 'user_id', target_user)
  );
  return chat_private.export_json(_row);
end
$$;

create or replace function public.admin_request_chat_export(target_user uuid) returns jsonb
language sql
set search_path = ''
as $$
  select chat_private.request_export_as_admin(admin_request_chat_export.target_user)
$$;

comment on function public.admin_request_chat_export(uuid) is
'Admins only: ask for an archive of any user''s chat data (what that user can read); audited.';

create or replace function chat_private.get_export(export_id uuid) returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  _uid uuid := auth.uid();
  _row chat_private.exports;
begin
  select e.* into _row from chat_private.exports as e
  where e.id = export_id and (e.user_id = _uid or e.requested_by = _uid);
  if not found then
    raise exception 'export % not found', export_id using errcode = 'P0002';
  end if;
  return chat_private.export_json(_row);
end
$$;

create or replace function public.get_chat_export(export_id uuid) returns jsonb
language sql
stable
set search_path = ''
as $$
  select chat_private.get_export(get_chat_export.export_id)
$$;

comment on function public.get_chat_export(uuid) is
'An export you asked for (yours, or one you requested as an admin): its status, counts and expiry.';

revoke all on function chat_private.export_json(chat_private.exports),
chat_private.new_export(uuid, uuid), chat_private.request_export(),
chat_private.request_export_as_admin(uuid), chat_private.get_export(uuid),
public.request_chat_export(), public.admin_request_chat_export(uuid), public.get_chat_export(uuid)
from public, anon, authenticated, service_role;
-- Each checks the caller itself (auth.uid(), the admin role).
grant execute on function chat_private.request_export(), chat_private.request_export_as_admin(uuid),
chat_private.get_export(uuid), public.request_chat_export(),
public.admin_request_chat_export(uuid), public.get_chat_export(uuid) to authenticated;
