-- Retention: closed sessions older than their type's retention period (RETENTION_DAYS,
-- passed by the service) are purged with their messages and files, in short batches, by
-- one relay once a day. A legal hold, set by an admin, exempts a session. The audit rows
-- of a purged session stay in the chain with their details erased, as for a deleted user.

-- ---------------------------------------------------------------- tables
create table chat_private.legal_holds (
  session_id uuid primary key references public.chat_sessions (id) on delete cascade,
  reason text not null,
  set_by uuid,
  set_at timestamptz not null default now(),
  constraint legal_holds_reason_check check (char_length(reason) between 1 and 500)
);

comment on table chat_private.legal_holds is
'Sessions exempt from the retention purge while an admin holds them (a dispute, a legal request). Not visible to participants.';

-- The purge looks for the oldest closed sessions.
create index chat_sessions_closed_at on public.chat_sessions (closed_at) where status = 'closed';

revoke all on chat_private.legal_holds from public, anon, authenticated, service_role;
alter table chat_private.legal_holds enable row level security;

-- ---------------------------------------------------------------- helpers
-- Whether a session is past its retention: closed, its type has a period in retention
-- ({"booking": 365, ...}, days), closed longer ago than that, and not held.
create or replace function chat_private.is_expired(
  target public.chat_sessions, retention jsonb, at_time timestamptz
) returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select target.status = 'closed'
    and retention ? target.type
    and target.closed_at < at_time - make_interval(secs => (retention ->> target.type)::float8 * 86400)
    and not exists (select 1 from chat_private.legal_holds as h where h.session_id = target.id)
$$;

-- One batch of the purge: up to max_rows messages of the oldest expired session (their
-- files queued for removal), or, once it has none, up to max_rows of its audit rows
-- erased, or, once those are done, the session itself. Each call is one short
-- transaction; the service calls it until it answers done.
create or replace function chat_private.purge_expired_batch(
  retention jsonb, max_rows integer default 5000
) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  _session public.chat_sessions;
  _erasure chat_private.erasures;
  _messages integer := 0;
  _files integer := 0;
  _audit integer := 0;
  _ids bigint [];
begin
  if retention is null or jsonb_typeof(retention) <> 'object' or retention = '{}'::jsonb then
    return jsonb_build_object('done', true);
  end if;
  select s.* into _session from public.chat_sessions as s
  where s.status = 'closed' and s.type in (select jsonb_object_keys(retention))
    and chat_private.is_expired(s, retention, now())
  order by s.closed_at
  limit 1
  for update skip locked;
  if not found then
    return jsonb_build_object('done', true);
  end if;
  insert into chat_private.erasures (kind, mode, actor_role, sessions)
  values ('retention', 'purge', 'service_role', array[_session.id])
  returning * into _erasure;
  perform set_config('chat.erasure', _erasure.id::text, true);

  -- Each message's own file only (its path names its session and sender).
  insert into chat_private.object_purges (storage_path, erasure_id, reason)
  select distinct m.metadata ->> 'storage_path', _erasure.id, 'retention'
  from (
    select m.metadata, m.session_id, m.sender_id from public.chat_messages as m
    where m.session_id = _session.id
    order by m.created_at, m.seq
    limit max_rows
  ) as m
  where m.metadata ->> 'storage_path' like m.session_id || '/' || m.sender_id || '/%'
  on conflict (storage_path) do nothing;
  get diagnostics _files = row_count;
  delete from public.chat_messages as m
  where m.id in (
    select d.id from public.chat_messages as d
    where d.session_id = _session.id
    order by d.created_at, d.seq
    limit max_rows
  );
  get diagnostics _messages = row_count;

  if _messages = 0 then
    select coalesce(array_agg(a.id), '{}') into _ids
    from (
      select a.id from public.chat_audit_logs as a
      where a.session_id = _session.id and a.erased_at is null
      limit max_rows
    ) as a;
    _audit := chat_private.erase_audit_rows(_ids, null, _erasure);
    if _audit = 0 then
      delete from public.chat_sessions as s where s.id = _session.id;
      perform set_config('chat.erasure', '', true);
      perform chat_private.append_audit(
        'retention.purged', _session.id, null,
        jsonb_build_object('type', _session.type, 'closed_at', _session.closed_at)
      );
    end if;
  end if;
  perform set_config('chat.erasure', '', true);
  update chat_private.erasures as e
  set counts = jsonb_build_object('messages', _messages, 'files', _files, 'audit_rows_erased', _audit),
    followed_up_at = now()
  where e.id = _erasure.id;
  return jsonb_build_object(
    'done', false,
    'session_id', _session.id,
    'sessions', case when _messages = 0 and _audit = 0 then 1 else 0 end,
    'messages', _messages,
    'files', _files,
    'audit_rows_erased', _audit
  );
end
$$;

-- What the purge would remove now, and what legal holds keep.
create or replace function chat_private.retention_preview(retention jsonb) returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'sessions', count(*),
    'messages', coalesce(sum((
      select count(*) from public.chat_messages as m where m.session_id = s.id
    )), 0),
    'held', (select count(*) from chat_private.legal_holds)
  )
  from public.chat_sessions as s
  where s.status = 'closed'
    and retention is not null and jsonb_typeof(retention) = 'object'
    and s.type in (select jsonb_object_keys(retention))
    and chat_private.is_expired(s, retention, now())
$$;

-- ---------------------------------------------------------------- admin functions
create or replace function chat_private.retention_preview_as_admin(retention jsonb) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  _preview jsonb;
begin
  perform chat_private.require_admin('preview the retention purge');
  _preview := chat_private.retention_preview(retention);
  perform chat_private.append_audit(
    'admin.retention.preview', null, null, jsonb_build_object('retention', retention) || _preview
  );
  return _preview;
end
$$;

create or replace function public.admin_chat_retention_preview(retention jsonb) returns jsonb
language sql
set search_path = ''
as $$
  select chat_private.retention_preview_as_admin(admin_chat_retention_preview.retention)
$$;

comment on function public.admin_chat_retention_preview(jsonb) is
'Admins only: how many closed sessions and messages the retention purge would remove now, and how many sessions are held; audited.';

create or replace function chat_private.set_legal_hold_as_admin(
  session_id uuid, hold boolean, reason text
) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  _uid uuid := auth.uid();
  _row chat_private.legal_holds;
begin
  perform chat_private.require_admin('place or lift a legal hold');
  if not exists (select 1 from public.chat_sessions as s where s.id = set_legal_hold_as_admin.session_id) then
    raise exception 'chat session % not found', set_legal_hold_as_admin.session_id
      using errcode = 'P0002';
  end if;
  if hold then
    if reason is null or char_length(btrim(reason)) = 0 or char_length(reason) > 500 then
      raise exception 'a legal hold needs a reason of 1 to 500 characters' using errcode = '22023';
    end if;
    insert into chat_private.legal_holds as h (session_id, reason, set_by)
    values (set_legal_hold_as_admin.session_id, reason, _uid)
    on conflict (session_id) do update set reason = excluded.reason, set_by = excluded.set_by, set_at = now()
    returning * into _row;
  else
    delete from chat_private.legal_holds as h where h.session_id = set_legal_hold_as_admin.session_id;
  end if;
  perform chat_private.append_audit(
    case when hold then 'admin.legal_hold.set' else 'admin.legal_hold.lifted' end,
    set_legal_hold_as_admin.session_id, null,
    jsonb_strip_nulls(jsonb_build_object('reason', reason))
  );
  return jsonb_build_object(
    'session_id', set_legal_hold_as_admin.session_id,
    'legal_hold', hold,
    'reason', _row.reason,
    'set_at', _row.set_at
  );
end
$$;

create or replace function public.admin_set_chat_legal_hold(
  session_id uuid, hold boolean, reason text default null
) returns jsonb
language sql
set search_path = ''
as $$
  select chat_private.set_legal_hold_as_admin(
    admin_set_chat_legal_hold.session_id, admin_set_chat_legal_hold.hold,
    admin_set_chat_legal_hold.reason
  )
$$;

comment on function public.admin_set_chat_legal_hold(uuid, boolean, text) is
'Admins only: place (with a reason) or lift a legal hold that exempts a session from the retention purge; audited.';

revoke all on function chat_private.is_expired(public.chat_sessions, jsonb, timestamptz),
chat_private.purge_expired_batch(jsonb, integer), chat_private.retention_preview(jsonb),
chat_private.retention_preview_as_admin(jsonb),
chat_private.set_legal_hold_as_admin(uuid, boolean, text),
public.admin_chat_retention_preview(jsonb), public.admin_set_chat_legal_hold(uuid, boolean, text)
from public, anon, authenticated, service_role;
grant execute on function chat_private.purge_expired_batch(jsonb, integer) to service_role;
-- The admin functions check the caller's app role themselves.
grant execute on function chat_private.retention_preview_as_admin(jsonb),
chat_private.set_legal_hold_as_admin(uuid, boolean, text),
public.admin_chat_retention_preview(jsonb),
public.admin_set_chat_legal_hold(uuid, boolean, text) to authenticated;
