-- Upload accounting for the upload worker (service role only): bytes stored per user and
-- UTC day (the daily upload quota), and a journal of uploads between storing the object
-- and committing its message. A crash in that window leaves a journal row behind; the
-- sweep removes the object when no message refers to it (and gives the bytes back).

create table chat_private.upload_usage (
  user_id uuid not null,
  day date not null,
  bytes bigint not null default 0,
  primary key (user_id, day),
  constraint upload_usage_bytes_check check (bytes >= 0)
);

comment on table chat_private.upload_usage is
'Bytes each user uploaded per UTC day, for UPLOAD_QUOTA_BYTES. Written by the upload worker only.';

create table chat_private.pending_uploads (
  storage_path text primary key,
  user_id uuid not null,
  bytes bigint not null,
  created_at timestamptz not null default now(),
  constraint pending_uploads_bytes_check check (bytes >= 0)
);

comment on table chat_private.pending_uploads is
'Objects stored (or being stored) whose message is not yet known to be committed; the orphan sweep reads it.';

create index pending_uploads_created_at on chat_private.pending_uploads (created_at);

revoke all on chat_private.upload_usage, chat_private.pending_uploads
from public, anon, authenticated;
grant select, insert, update, delete on chat_private.upload_usage, chat_private.pending_uploads
to service_role;

alter table chat_private.upload_usage enable row level security;
alter table chat_private.pending_uploads enable row level security;

-- Count an upload against the user's quota for today and journal it, in one statement.
-- Returns the user's total for today, or null when the upload would exceed daily_quota
-- (0: no quota); nothing is written then.
create or replace function chat_private.begin_upload(
  uploader uuid, object_path text, size_bytes bigint, daily_quota bigint
) returns bigint
language plpgsql
set search_path = ''
as $$
declare
  _total bigint;
begin
  if daily_quota > 0 and size_bytes > daily_quota then
    return null;
  end if;
  insert into chat_private.upload_usage as u (user_id, day, bytes)
  values (uploader, (now() at time zone 'utc')::date, size_bytes)
  on conflict (user_id, day) do update
    set bytes = u.bytes + excluded.bytes
    where daily_quota <= 0 or u.bytes + excluded.bytes <= daily_quota
  returning u.bytes into _total;
  if _total is null then
    return null;
  end if;
  insert into chat_private.pending_uploads (storage_path, user_id, bytes)
  values (object_path, uploader, size_bytes);
  return _total;
end
$$;

-- The message is committed: the upload is no longer pending.
create or replace function chat_private.finish_upload(object_path text) returns void
language sql
set search_path = ''
as $$
  delete from chat_private.pending_uploads where storage_path = object_path
$$;

-- The object was not kept (storing or the message failed, or the sweep removed it): the
-- journal row goes and its bytes no longer count against the day they were counted on.
create or replace function chat_private.cancel_upload(object_path text) returns void
language sql
set search_path = ''
as $$
  with gone as (
    delete from chat_private.pending_uploads
    where storage_path = object_path
    returning user_id, bytes, (created_at at time zone 'utc')::date as day
  )

  update chat_private.upload_usage as u
  set bytes = greatest(u.bytes - gone.bytes, 0)
  from gone
  where u.user_id = gone.user_id and u.day = gone.day
$$;

-- Bytes the user uploaded today (UTC).
create or replace function chat_private.uploaded_today(uploader uuid) returns bigint
language sql
stable
set search_path = ''
as $$
  select coalesce(
    (
      select u.bytes from chat_private.upload_usage as u
      where u.user_id = uploader and u.day = (now() at time zone 'utc')::date
    ),
    0
  )
$$;

-- Journal rows older than the grace period, and whether a message refers to the object.
create or replace function chat_private.stale_uploads(grace interval, max_rows integer)
returns table (storage_path text, user_id uuid, has_message boolean)
language sql
stable
set search_path = ''
as $$
  select
    p.storage_path,
    p.user_id,
    exists (
      select 1 from public.chat_messages as m
      where m.session_id = case
          when split_part(p.storage_path, '/', 1)
            ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
            then split_part(p.storage_path, '/', 1)::uuid
        end
        and m.metadata ->> 'storage_path' = p.storage_path
    ) as has_message
  from chat_private.pending_uploads as p
  where p.created_at < now() - grace
  order by p.created_at
  limit greatest(max_rows, 1)
$$;

-- Old usage rows are of no use past their day; the sweep drops those older than a week.
create or replace function chat_private.purge_upload_usage() returns bigint
language sql
set search_path = ''
as $$
  with gone as (
    delete from chat_private.upload_usage
    where day < (now() at time zone 'utc')::date - 7
    returning 1
  )

  select count(*) from gone
$$;

revoke all on function chat_private.begin_upload(uuid, text, bigint, bigint) from public;
revoke all on function chat_private.finish_upload(text) from public;
revoke all on function chat_private.cancel_upload(text) from public;
revoke all on function chat_private.uploaded_today(uuid) from public;
revoke all on function chat_private.stale_uploads(interval, integer) from public;
revoke all on function chat_private.purge_upload_usage() from public;
grant execute on function chat_private.begin_upload(uuid, text, bigint, bigint) to service_role;
grant execute on function chat_private.finish_upload(text) to service_role;
grant execute on function chat_private.cancel_upload(text) to service_role;
grant execute on function chat_private.uploaded_today(uuid) to service_role;
grant execute on function chat_private.stale_uploads(interval, integer) to service_role;
grant execute on function chat_private.purge_upload_usage() to service_role;
