-- Audit trail and monitoring.
--
-- * Every change to the chat tables, and to objects of the chat-files bucket, writes one
--   chat_audit_logs row from a trigger, whatever path made it (the relay, the REST API,
--   supabase-js through PostgREST or Storage, SQL). The actor comes from the JWT claims in
--   force: the user and their app role (app_metadata only), 'service_role', or, with no
--   claims at all, the database role (a migration, psql as postgres).
-- * The audit rows form a SHA-256 hash chain: each row carries chain_seq, prev_hash and
--   hash = sha256(prev_hash | canonical content). Rows are linked at commit (a deferred
--   constraint trigger) under the lock of one chain-head row, so concurrent writers build
--   one valid chain, in commit order, and the head lock is always the last lock a
--   transaction takes (no lock-order deadlocks with the chat tables).
--   chat_private.verify_audit_chain() names the first broken row.
-- * Admins (app_metadata.role admin or super_admin) read the audit log and the monitoring
--   figures through security definer functions that check the role and audit the read.
-- * public.purge_chat_monitoring(older_than) deletes old monitoring events (retention).
--
-- storage.objects: hosted Supabase grants postgres every table privilege on the storage
-- tables (TRIGGER included), so postgres may create triggers on storage.objects as it
-- creates policies there. The trigger functions live in chat_private: nothing is created
-- in schema storage.

-- ---------------------------------------------------------------- tables
alter table public.chat_audit_logs
add column chain_seq bigint,
add column prev_hash text,
add column hash text,
add constraint chat_audit_logs_chain_seq_key unique (chain_seq),
add constraint chat_audit_logs_hash_check check (
  hash ~ '^[0-9a-f]{64}$' and prev_hash ~ '^[0-9a-f]{64}$'
);

comment on column public.chat_audit_logs.chain_seq is
'Position in the hash chain (1, 2, ...), in commit order. Set once, when the row is linked at commit.';
comment on column public.chat_audit_logs.prev_hash is
'hash of the row before it in the chain (64 zeros for the first row).';
comment on column public.chat_audit_logs.hash is
'sha256 (hex) of prev_hash, a bar, and the row''s canonical JSON (chat_private.audit_hash).';

create table chat_private.audit_chain_head (
  id boolean primary key default true,
  last_seq bigint not null default 0,
  last_hash text not null,
  last_id bigint,
  updated_at timestamptz not null default now(),
  constraint audit_chain_head_single_row check (id)
);

comment on table chat_private.audit_chain_head is
'The end of the audit hash chain: one row, locked FOR UPDATE while a row is linked.';

insert into chat_private.audit_chain_head (id, last_seq, last_hash, last_id)
values (true, 0, repeat('0', 64), null)
on conflict (id) do nothing;

-- Monitoring: message throughput and upload figures by time (the seed's timestamp index).
create index chat_messages_created_at on public.chat_messages (created_at desc);

-- ---------------------------------------------------------------- grants
revoke all on chat_private.audit_chain_head from public, anon, authenticated, service_role;
alter table chat_private.audit_chain_head enable row level security;

-- ---------------------------------------------------------------- chain helpers
-- The canonical content of a row, hashed with the previous row's hash. jsonb renders
-- keys in a fixed order, so the same row always gives the same text.
create or replace function chat_private.audit_hash(entry public.chat_audit_logs)
returns text
language sql
stable
set search_path = ''
as $$
  select encode(
    sha256(convert_to(
      entry.prev_hash || '|' || jsonb_build_object(
        'id', entry.id,
        'chain_seq', entry.chain_seq,
        'actor_id', entry.actor_id,
        'actor_role', entry.actor_role,
        'action', entry.action,
        'session_id', entry.session_id,
        'message_id', entry.message_id,
        'details', entry.details,
        'created_at', to_char(entry.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
      )::text,
      'UTF8'
    )),
    'hex'
  )
$$;

-- Link one row into the chain: lock the head, hash, write both. Runs at commit (deferred
-- trigger below), so the head lock is held only while the transaction commits.
create or replace function chat_private.link_audit_row(target_id bigint) returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  _entry public.chat_audit_logs;
  _head chat_private.audit_chain_head;
begin
  select a.* into _entry from public.chat_audit_logs as a where a.id = target_id;
  if not found or _entry.hash is not null then
    return;
  end if;
  select h.* into _head from chat_private.audit_chain_head as h where h.id for update;
  if not found then
    raise exception 'the audit chain head is missing' using errcode = '55000';
  end if;
  _entry.chain_seq := _head.last_seq + 1;
  _entry.prev_hash := _head.last_hash;
  _entry.hash := chat_private.audit_hash(_entry);
  update public.chat_audit_logs as a
  set chain_seq = _entry.chain_seq, prev_hash = _entry.prev_hash, hash = _entry.hash
  where a.id = target_id;
  update chat_private.audit_chain_head as h
  set last_seq = _entry.chain_seq, last_hash = _entry.hash, last_id = target_id, updated_at = now()
  where h.id;
end
$$;

-- ---------------------------------------------------------------- append-only, chained
-- Replaces the append-only guard of the schema migration: the one change ever allowed is
-- linking a row into the chain (filling chain_seq, prev_hash and hash, once), with every
-- other column unchanged.
create or replace function chat_private.refuse_audit_change() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE' then
    if old.hash is null and old.chain_seq is null and old.prev_hash is null
      and new.hash is not null and new.chain_seq is not null and new.prev_hash is not null
      and (
        new.id, new.actor_id, new.actor_role, new.action, new.session_id, new.message_id,
        new.details, new.created_at
      ) is not distinct from (
        old.id, old.actor_id, old.actor_role, old.action, old.session_id, old.message_id,
        old.details, old.created_at
      ) then
      return new;
    end if;
  end if;
  raise exception 'chat_audit_logs is append-only: % is not allowed', tg_op
    using errcode = '42501';
end
$$;

create or replace function chat_private.link_new_audit_row() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform chat_private.link_audit_row(new.id);
  return null;
end
$$;

create constraint trigger chat_audit_logs_chain
after insert on public.chat_audit_logs
deferrable initially deferred
for each row execute function chat_private.link_new_audit_row();

-- Rows written before this migration join the chain now, in id order.
do $$
declare
  _id bigint;
begin
  for _id in select a.id from public.chat_audit_logs as a where a.hash is null order by a.id loop
    perform chat_private.link_audit_row(_id);
  end loop;
end
$$;

-- ---------------------------------------------------------------- actor and writing
-- Who is acting, from the JWT claims in force (as PostgREST, Storage and our service set
-- them): the user and their app role, or service_role; with no claims, the database role.
create or replace function chat_private.audit_actor(out actor_id uuid, out actor_role text)
language plpgsql
stable
set search_path = ''
as $$
declare
  _claims jsonb := auth.jwt();
  _sub text := _claims ->> 'sub';
begin
  if _claims ->> 'role' = 'service_role' then
    actor_role := 'service_role';
  elsif _sub ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
    actor_id := _sub::uuid;
    actor_role := chat_private.app_role();
  elsif nullif(_claims ->> 'role', '') is not null then
    actor_role := _claims ->> 'role';
  else
    actor_role := coalesce(nullif(current_setting('role', true), 'none'), session_user::text);
  end if;
end
$$;

-- One audit row for the current actor. `via` is the client's application_name
-- (chat-workers for this service, postgrest, storage, psql, ...).
create or replace function chat_private.append_audit(
  audit_action text,
  target_session_id uuid,
  target_message_id uuid,
  audit_details jsonb
) returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  _actor_id uuid;
  _actor_role text;
begin
  select a.actor_id, a.actor_role into _actor_id, _actor_role from chat_private.audit_actor() as a;
  insert into public.chat_audit_logs (actor_id, actor_role, action, session_id, message_id, details)
  values (
    _actor_id,
    _actor_role,
    audit_action,
    target_session_id,
    target_message_id,
    coalesce(audit_details, '{}'::jsonb)
    || jsonb_build_object('via', coalesce(nullif(current_setting('application_name', true), ''), 'unknown'))
  );
end
$$;

-- ---------------------------------------------------------------- data change triggers
create or replace function chat_private.audit_session_change() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  _action text := 'session.updated';
  _details jsonb := '{}'::jsonb;
begin
  if tg_op = 'INSERT' then
    perform chat_private.append_audit(
      'session.created', new.id, null,
      jsonb_build_object(
        'type', new.type, 'status', new.status, 'participants', new.participants,
        'booking_id', new.booking_id, 'title', new.title, 'created_by', new.created_by
      )
    );
    return null;
  end if;
  if tg_op = 'DELETE' then
    perform chat_private.append_audit(
      'session.deleted', old.id, null,
      jsonb_build_object('type', old.type, 'status', old.status, 'participants', old.participants)
    );
    return null;
  end if;
  if old.status = 'active' and new.status = 'closed' then
    _action := 'session.closed';
  elsif old.status = 'closed' and new.status = 'active' then
    _action := 'session.reopened';
  end if;
  if old.status is distinct from new.status then
    _details := _details || jsonb_build_object(
      'status', jsonb_build_object('from', old.status, 'to', new.status)
    );
  end if;
  if old.title is distinct from new.title then
    _details := _details || jsonb_build_object(
      'title', jsonb_build_object('from', old.title, 'to', new.title)
    );
  end if;
  perform chat_private.append_audit(_action, new.id, null, _details);
  return null;
end
$$;

-- Message content stays out of the audit (it outlives the session): its length only.
create or replace function chat_private.audit_message_change() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    perform chat_private.append_audit(
      'message.created', new.session_id, new.id,
      jsonb_strip_nulls(jsonb_build_object(
        'type', new.type, 'sender_id', new.sender_id, 'seq', new.seq,
        'content_length', char_length(new.content),
        'reply_to_message_id', new.reply_to_message_id,
        'client_message_id', new.client_message_id,
        'storage_path', new.metadata ->> 'storage_path',
        'size_bytes', new.metadata -> 'size_bytes'
      ))
    );
  elsif tg_op = 'UPDATE' then
    perform chat_private.append_audit(
      'message.updated', new.session_id, new.id,
      jsonb_build_object(
        'type', new.type,
        'content_changed', old.content is distinct from new.content,
        'metadata_changed', old.metadata is distinct from new.metadata,
        'content_length', char_length(new.content)
      )
    );
  else
    perform chat_private.append_audit(
      'message.deleted', old.session_id, old.id,
      jsonb_build_object('type', old.type, 'sender_id', old.sender_id, 'seq', old.seq)
    );
  end if;
  return null;
end
$$;

create or replace function chat_private.audit_read_state_change() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  _previous uuid;
begin
  if tg_op = 'UPDATE' then
    _previous := old.last_read_message_id;
  end if;
  perform chat_private.append_audit(
    'read_state.advanced', new.session_id, new.last_read_message_id,
    jsonb_build_object(
      'user_id', new.user_id,
      'last_read_seq', new.last_read_seq,
      'previous_message_id', _previous
    )
  );
  return null;
end
$$;

create or replace function chat_private.audit_chat_file_change() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  _name text := new.name;
  _metadata jsonb := new.metadata;
  _action text := 'file.created';
  _folder text;
  _details jsonb := '{}'::jsonb;
begin
  if tg_op = 'DELETE' then
    _name := old.name;
    _metadata := old.metadata;
    _action := 'file.removed';
  elsif tg_op = 'UPDATE' then
    _action := case when old.name is distinct from new.name then 'file.moved' else 'file.replaced' end;
    _details := jsonb_build_object('previous_name', old.name);
  end if;
  _folder := (storage.foldername(_name))[1];
  perform chat_private.append_audit(
    _action,
    case
      when _folder ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
        then _folder::uuid
    end,
    null,
    _details || jsonb_build_object(
      'bucket', 'chat-files',
      'name', _name,
      'size', _metadata -> 'size',
      'mimetype', _metadata ->> 'mimetype'
    )
  );
  return null;
end
$$;

create trigger chat_sessions_audit
after insert or delete on public.chat_sessions
for each row execute function chat_private.audit_session_change();

-- last_message_at and updated_at move with every message: not an audited change.
create trigger chat_sessions_audit_update
after update on public.chat_sessions
for each row
when (old.status is distinct from new.status or old.title is distinct from new.title)
execute function chat_private.audit_session_change();

create trigger chat_messages_audit
after insert or delete on public.chat_messages
for each row execute function chat_private.audit_message_change();

create trigger chat_messages_audit_update
after update on public.chat_messages
for each row
when (
  old.content is distinct from new.content
  or old.metadata is distinct from new.metadata
  or old.type is distinct from new.type
)
execute function chat_private.audit_message_change();

create trigger chat_read_state_audit
after insert on public.chat_read_state
for each row execute function chat_private.audit_read_state_change();

create trigger chat_read_state_audit_update
after update on public.chat_read_state
for each row
when (old.last_read_seq is distinct from new.last_read_seq)
execute function chat_private.audit_read_state_change();

create trigger chat_files_audit_insert
after insert on storage.objects
for each row
when (new.bucket_id = 'chat-files')
execute function chat_private.audit_chat_file_change();

create trigger chat_files_audit_update
after update on storage.objects
for each row
when (
  new.bucket_id = 'chat-files'
  and (old.name is distinct from new.name or old.version is distinct from new.version)
)
execute function chat_private.audit_chat_file_change();

create trigger chat_files_audit_delete
after delete on storage.objects
for each row
when (old.bucket_id = 'chat-files')
execute function chat_private.audit_chat_file_change();

-- ---------------------------------------------------------------- verification
-- The first row that breaks the chain (an edited, inserted or removed row), or null.
-- Rows linked after the head was read (concurrent commits) are left for the next run.
create or replace function chat_private.verify_audit_chain() returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  _head chat_private.audit_chain_head;
  _entry public.chat_audit_logs;
  _prev text := repeat('0', 64);
  _seq bigint := 0;
  _unlinked bigint;
begin
  -- Link this transaction's own pending rows first (they are otherwise linked at commit).
  set constraints public.chat_audit_logs_chain immediate;
  set constraints public.chat_audit_logs_chain deferred;
  select h.* into _head from chat_private.audit_chain_head as h where h.id;
  if not found then
    return 0;
  end if;
  for _entry in
    select a.* from public.chat_audit_logs as a
    where a.chain_seq <= _head.last_seq
    order by a.chain_seq
  loop
    _seq := _seq + 1;
    if _entry.chain_seq <> _seq
      or _entry.prev_hash is distinct from _prev
      or _entry.hash is distinct from chat_private.audit_hash(_entry) then
      return _entry.id;
    end if;
    _prev := _entry.hash;
  end loop;
  if _seq <> _head.last_seq or _prev <> _head.last_hash then
    -- The newest rows are gone: name the last one the head remembers.
    return coalesce(_head.last_id, 0);
  end if;
  select a.id into _unlinked from public.chat_audit_logs as a
  where a.chain_seq is null
  order by a.id
  limit 1;
  return _unlinked;
end
$$;

comment on function chat_private.verify_audit_chain() is
'Recomputes the audit hash chain; returns the id of the first broken row, or null when intact.';

-- ---------------------------------------------------------------- admin helpers
-- A message's metadata.size_bytes when it is a whole number of bytes (metadata is
-- client-written through supabase-js: anything else counts as unknown).
create or replace function chat_private.size_bytes(metadata jsonb) returns bigint
language sql
immutable
set search_path = ''
as $$
  select case
    when jsonb_typeof(metadata -> 'size_bytes') = 'number'
      and (metadata ->> 'size_bytes') ~ '^[0-9]{1,15}$'
      then (metadata ->> 'size_bytes')::bigint
  end
$$;

-- The caller's id when they are an admin (app_metadata.role admin or super_admin, never
-- user_metadata); raises otherwise.
create or replace function chat_private.require_admin(purpose text) returns uuid
language plpgsql
stable
set search_path = ''
as $$
declare
  _uid uuid := auth.uid();
begin
  if _uid is null then
    raise exception 'not authenticated' using errcode = '28000';
  end if;
  if not chat_private.is_admin() then
    raise exception 'only admins can %', purpose using errcode = '42501';
  end if;
  return _uid;
end
$$;

create or replace function chat_private.read_audit_logs(
  max_rows integer,
  skip_rows integer,
  target_session_id uuid,
  target_user_id uuid,
  target_action text,
  since timestamptz,
  until timestamptz
) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  _logs jsonb;
  _total bigint;
begin
  perform chat_private.require_admin('read the audit log');
  if max_rows is null or max_rows not between 1 and 500 then
    raise exception 'limit must be between 1 and 500' using errcode = '22023';
  end if;
  if skip_rows is null or skip_rows < 0 then
    raise exception 'offset must not be negative' using errcode = '22023';
  end if;
  select count(*) into _total
  from public.chat_audit_logs as a
  where (target_session_id is null or a.session_id = target_session_id)
    and (target_user_id is null or a.actor_id = target_user_id)
    and (target_action is null or a.action = target_action)
    and (since is null or a.created_at >= since)
    and (until is null or a.created_at < until);
  select coalesce(jsonb_agg(to_jsonb(page) order by page.created_at desc, page.id desc), '[]'::jsonb)
  into _logs
  from (
    select a.id, a.actor_id, a.actor_role, a.action, a.session_id, a.message_id, a.details,
      a.created_at, a.chain_seq, a.prev_hash, a.hash
    from public.chat_audit_logs as a
    where (target_session_id is null or a.session_id = target_session_id)
      and (target_user_id is null or a.actor_id = target_user_id)
      and (target_action is null or a.action = target_action)
      and (since is null or a.created_at >= since)
      and (until is null or a.created_at < until)
    order by a.created_at desc, a.id desc
    limit max_rows
    offset skip_rows
  ) as page;
  perform chat_private.append_audit(
    'admin.audit.read', target_session_id, null,
    jsonb_strip_nulls(jsonb_build_object(
      'limit', max_rows, 'offset', skip_rows, 'user_id', target_user_id,
      'action', target_action, 'since', since, 'until', until,
      'returned', jsonb_array_length(_logs)
    ))
  );
  return jsonb_build_object('logs', _logs, 'total', _total);
end
$$;

create or replace function chat_private.verify_audit_chain_as_admin() returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  _broken bigint;
  _checked bigint;
begin
  perform chat_private.require_admin('verify the audit log');
  _broken := chat_private.verify_audit_chain();
  select h.last_seq into _checked from chat_private.audit_chain_head as h where h.id;
  perform chat_private.append_audit(
    'admin.audit.verify', null, null, jsonb_build_object('first_broken_id', _broken)
  );
  return jsonb_build_object(
    'valid', _broken is null, 'first_broken_id', _broken, 'checked', coalesce(_checked, 0)
  );
end
$$;

-- One session as an admin sees it: participants (name, app role, messages sent, unread),
-- message counts by type, first and last message, median response time between
-- participants, uploads (count and bytes from metadata.size_bytes), duration.
create or replace function chat_private.session_monitoring(target_session_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  _session public.chat_sessions;
  _participants jsonb;
  _counts jsonb;
  _first jsonb;
  _last jsonb;
  _response jsonb;
  _uploads jsonb;
begin
  perform chat_private.require_admin('monitor sessions');
  select s.* into _session from public.chat_sessions as s where s.id = target_session_id;
  if not found then
    raise exception 'chat session % not found', target_session_id using errcode = 'P0002';
  end if;

  select coalesce(jsonb_agg(jsonb_build_object(
    'user_id', p.user_id,
    'name', chat_private.display_name(u.email, u.raw_user_meta_data),
    'app_role', coalesce(nullif(u.raw_app_meta_data ->> 'role', ''), 'client'),
    'messages_sent', (
      select count(*) from public.chat_messages as m
      where m.session_id = target_session_id and m.sender_id = p.user_id and m.type <> 'system'
    ),
    'last_read_at', r.last_read_at,
    'unread_count', (
      select count(*) from public.chat_messages as m
      where m.session_id = target_session_id
        and (m.created_at, m.seq)
        > (coalesce(r.last_read_at, '-infinity'::timestamptz), coalesce(r.last_read_seq, 0))
        and m.sender_id is distinct from p.user_id
    )
  ) order by p.ord), '[]'::jsonb)
  into _participants
  from unnest(_session.participants) with ordinality as p (user_id, ord)
  left join auth.users as u on u.id = p.user_id
  left join public.chat_read_state as r
    on r.session_id = target_session_id and r.user_id = p.user_id;

  select coalesce(jsonb_object_agg(c.type, c.n), '{}'::jsonb) into _counts
  from (
    select m.type, count(*) as n from public.chat_messages as m
    where m.session_id = target_session_id
    group by m.type
  ) as c;

  select jsonb_build_object('id', m.id, 'sender_id', m.sender_id, 'type', m.type, 'created_at', m.created_at)
  into _first
  from public.chat_messages as m
  where m.session_id = target_session_id
  order by m.created_at, m.seq
  limit 1;

  select jsonb_build_object('id', m.id, 'sender_id', m.sender_id, 'type', m.type, 'created_at', m.created_at)
  into _last
  from public.chat_messages as m
  where m.session_id = target_session_id
  order by m.created_at desc, m.seq desc
  limit 1;

  -- A response: a message whose previous (non-system) message came from someone else.
  select jsonb_build_object(
    'responses', count(*),
    'median_seconds', round(
      (percentile_cont(0.5) within group (order by extract(epoch from t.created_at - t.prev_at)))::numeric,
      3
    )
  )
  into _response
  from (
    select m.created_at, m.sender_id,
      lag(m.created_at) over turns as prev_at,
      lag(m.sender_id) over turns as prev_sender
    from public.chat_messages as m
    where m.session_id = target_session_id and m.type <> 'system' and m.sender_id is not null
    window turns as (order by m.created_at, m.seq)
  ) as t
  where t.prev_sender is not null and t.prev_sender <> t.sender_id;

  select jsonb_build_object(
    'count', count(*),
    'bytes', coalesce(sum(chat_private.size_bytes(m.metadata)), 0)
  )
  into _uploads
  from public.chat_messages as m
  where m.session_id = target_session_id and m.type in ('audio', 'image', 'file');

  perform chat_private.append_audit('admin.monitoring.session.read', target_session_id, null, '{}');

  return jsonb_build_object(
    'session', jsonb_build_object(
      'id', _session.id, 'type', _session.type, 'status', _session.status,
      'title', _session.title, 'booking_id', _session.booking_id,
      'created_by', _session.created_by, 'created_at', _session.created_at,
      'closed_at', _session.closed_at, 'last_message_at', _session.last_message_at
    ),
    'participants', _participants,
    'message_counts', _counts || jsonb_build_object(
      'total', (select coalesce(sum(v::bigint), 0) from jsonb_each_text(_counts) as e (k, v))
    ),
    'first_message', _first,
    'last_message', _last,
    'response_time', _response,
    'uploads', _uploads,
    'duration_seconds', round(
      extract(epoch from coalesce(_session.closed_at, now()) - _session.created_at)::numeric, 3
    )
  );
end
$$;

-- The whole system: the seed's "Performance Metrics" (message throughput, session
-- durations, upload statistics, error rate) and its two monitoring queries. Active
-- connections live in the relays' memory: the service adds them.
create or replace function chat_private.monitoring_overview() returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  _throughput jsonb;
  _durations jsonb;
  _uploads jsonb;
  _errors jsonb;
  _events jsonb;
  _per_day jsonb;
begin
  perform chat_private.require_admin('read system monitoring');

  select jsonb_build_object(
    'last_minute', count(*) filter (where m.created_at >= now() - interval '1 minute'),
    'last_hour', count(*),
    'per_minute_last_hour', round(count(*) / 60.0, 2)
  )
  into _throughput
  from public.chat_messages as m
  where m.created_at >= now() - interval '1 hour';

  -- Sessions created in the last 7 days: closed ones by duration, open ones by age.
  select jsonb_build_object(
    'window_days', 7,
    'closed', count(*) filter (where s.closed_at is not null),
    'active', count(*) filter (where s.closed_at is null),
    'closed_avg_seconds', round(avg(extract(epoch from s.closed_at - s.created_at)), 3),
    'closed_median_seconds', round((percentile_cont(0.5) within group (
      order by extract(epoch from s.closed_at - s.created_at)
    ))::numeric, 3),
    'closed_max_seconds', round(max(extract(epoch from s.closed_at - s.created_at)), 3),
    'active_avg_age_seconds', round(
      avg(extract(epoch from now() - s.created_at)) filter (where s.closed_at is null), 3
    )
  )
  into _durations
  from public.chat_sessions as s
  where s.created_at >= now() - interval '7 days';

  select jsonb_build_object(
    'last_hour', jsonb_build_object(
      'count', count(*) filter (where u.created_at >= now() - interval '1 hour'),
      'bytes', coalesce(sum(u.size) filter (where u.created_at >= now() - interval '1 hour'), 0)
    ),
    'last_24_hours', jsonb_build_object('count', count(*), 'bytes', coalesce(sum(u.size), 0)),
    'by_type_last_24_hours', coalesce((
      select jsonb_object_agg(t.type, jsonb_build_object('count', t.n, 'bytes', t.bytes))
      from (
        select m.type, count(*) as n, coalesce(sum(chat_private.size_bytes(m.metadata)), 0) as bytes
        from public.chat_messages as m
        where m.created_at >= now() - interval '24 hours' and m.type in ('audio', 'image', 'file')
        group by m.type
      ) as t
    ), '{}'::jsonb)
  )
  into _uploads
  from (
    select m.created_at, chat_private.size_bytes(m.metadata) as size
    from public.chat_messages as m
    where m.created_at >= now() - interval '24 hours' and m.type in ('audio', 'image', 'file')
  ) as u;

  select jsonb_build_object(
    'window_seconds', 3600,
    'events', count(*),
    'errors', count(*) filter (where e.event_type = 'error'),
    'rate', round(count(*) filter (where e.event_type = 'error')::numeric / nullif(count(*), 0), 4),
    'by_code', coalesce((
      select jsonb_object_agg(c.code, c.n)
      from (
        select coalesce(x.details ->> 'code', 'unknown') as code, count(*) as n
        from public.chat_monitoring as x
        where x.timestamp >= now() - interval '1 hour' and x.event_type = 'error'
        group by 1
      ) as c
    ), '{}'::jsonb)
  )
  into _errors
  from public.chat_monitoring as e
  where e.timestamp >= now() - interval '1 hour';

  -- The seed's first query: user activity by event type in the last hour.
  select coalesce(jsonb_agg(to_jsonb(q) order by q.event_count desc, q.event_type), '[]'::jsonb)
  into _events
  from (
    select e.event_type, count(*) as event_count, count(distinct e.user_id) as unique_users
    from public.chat_monitoring as e
    where e.timestamp >= now() - interval '1 hour'
    group by e.event_type
  ) as q;

  -- The seed's second query: sessions created per day and type over seven days (UTC days).
  -- unique_participants counts distinct users (the seed's count(distinct participants)
  -- would count distinct participant lists).
  select coalesce(jsonb_agg(to_jsonb(q) order by q.date desc, q.type), '[]'::jsonb)
  into _per_day
  from (
    select (s.created_at at time zone 'UTC')::date as date, s.type,
      count(distinct s.id) as sessions_created,
      count(distinct p.user_id) as unique_participants
    from public.chat_sessions as s
    cross join lateral unnest(s.participants) as p (user_id)
    where s.created_at >= now() - interval '7 days'
    group by 1, 2
  ) as q;

  perform chat_private.append_audit('admin.monitoring.read', null, null, '{}');

  return jsonb_build_object(
    'generated_at', now(),
    'message_throughput', _throughput,
    'session_durations', _durations,
    'uploads', _uploads,
    'error_rate', _errors,
    'events_last_hour', _events,
    'sessions_per_day', _per_day
  );
end
$$;

revoke all on function chat_private.audit_hash(public.chat_audit_logs) from public;
revoke all on function chat_private.link_audit_row(bigint) from public;
revoke all on function chat_private.refuse_audit_change() from public;
revoke all on function chat_private.link_new_audit_row() from public;
revoke all on function chat_private.audit_actor() from public;
revoke all on function chat_private.append_audit(text, uuid, uuid, jsonb) from public;
revoke all on function chat_private.audit_session_change() from public;
revoke all on function chat_private.audit_message_change() from public;
revoke all on function chat_private.audit_read_state_change() from public;
revoke all on function chat_private.audit_chat_file_change() from public;
revoke all on function chat_private.verify_audit_chain() from public;
revoke all on function chat_private.require_admin(text) from public;
revoke all on function chat_private.size_bytes(jsonb) from public;
revoke all on function chat_private.read_audit_logs(
  integer, integer, uuid, uuid, text, timestamptz, timestamptz
) from public;
revoke all on function chat_private.verify_audit_chain_as_admin() from public;
revoke all on function chat_private.session_monitoring(uuid) from public;
revoke all on function chat_private.monitoring_overview() from public;

grant execute on function chat_private.verify_audit_chain() to service_role;
grant execute on function chat_private.read_audit_logs(
  integer, integer, uuid, uuid, text, timestamptz, timestamptz
) to authenticated;
grant execute on function chat_private.verify_audit_chain_as_admin() to authenticated;
grant execute on function chat_private.session_monitoring(uuid) to authenticated;
grant execute on function chat_private.monitoring_overview() to authenticated;

-- ---------------------------------------------------------------- public functions
-- Security invoker wrappers, callable through PostgREST (/rest/v1/rpc/...) by admins; the
-- role check and the audit row are in the chat_private functions they call.
create or replace function public.admin_chat_audit_logs(
  max_rows integer default 50,
  skip_rows integer default 0,
  session_id uuid default null,
  user_id uuid default null,
  action text default null,
  since timestamptz default null,
  until timestamptz default null
) returns jsonb
language sql
security invoker
set search_path = ''
as $$
  select chat_private.read_audit_logs(
    admin_chat_audit_logs.max_rows,
    admin_chat_audit_logs.skip_rows,
    admin_chat_audit_logs.session_id,
    admin_chat_audit_logs.user_id,
    admin_chat_audit_logs.action,
    admin_chat_audit_logs.since,
    admin_chat_audit_logs.until
  )
$$;

comment on function public.admin_chat_audit_logs(
  integer, integer, uuid, uuid, text, timestamptz, timestamptz
) is
'Admins only: audit rows newest first, filtered, with the total; the read is itself audited.';

create or replace function public.admin_verify_chat_audit_chain() returns jsonb
language sql
security invoker
set search_path = ''
as $$
  select chat_private.verify_audit_chain_as_admin()
$$;

comment on function public.admin_verify_chat_audit_chain() is
'Admins only: {valid, first_broken_id, checked} for the audit hash chain; audited.';

create or replace function public.admin_chat_session_monitoring(session_id uuid) returns jsonb
language sql
security invoker
set search_path = ''
as $$
  select chat_private.session_monitoring(admin_chat_session_monitoring.session_id)
$$;

comment on function public.admin_chat_session_monitoring(uuid) is
'Admins only: one session''s participants, message counts, response time, unread counts, uploads, duration; audited.';

create or replace function public.admin_chat_monitoring() returns jsonb
language sql
security invoker
set search_path = ''
as $$
  select chat_private.monitoring_overview()
$$;

comment on function public.admin_chat_monitoring() is
'Admins only: throughput, session durations, uploads, error rate and the seed''s monitoring queries; audited.';

-- Retention: the service calls it periodically (MONITORING_RETENTION_DAYS); a hosted
-- project may schedule the same call with pg_cron instead.
create or replace function public.purge_chat_monitoring(older_than interval) returns bigint
language plpgsql
security invoker
set search_path = ''
as $$
declare
  _deleted bigint;
begin
  if older_than is null or older_than < interval '1 minute' then
    raise exception 'older_than must be at least one minute' using errcode = '22023';
  end if;
  delete from public.chat_monitoring as e where e.timestamp < now() - older_than;
  get diagnostics _deleted = row_count;
  return _deleted;
end
$$;

comment on function public.purge_chat_monitoring(interval) is
'Delete monitoring events older than the given age; returns how many. Service role only.';

revoke all on function public.admin_chat_audit_logs(
  integer, integer, uuid, uuid, text, timestamptz, timestamptz
) from public, anon;
revoke all on function public.admin_verify_chat_audit_chain() from public, anon;
revoke all on function public.admin_chat_session_monitoring(uuid) from public, anon;
revoke all on function public.admin_chat_monitoring() from public, anon;
revoke all on function public.purge_chat_monitoring(interval) from public, anon, authenticated;

grant execute on function public.admin_chat_audit_logs(
  integer, integer, uuid, uuid, text, timestamptz, timestamptz
) to authenticated;
grant execute on function public.admin_verify_chat_audit_chain() to authenticated;
grant execute on function public.admin_chat_session_monitoring(uuid) to authenticated;
grant execute on function public.admin_chat_monitoring() to authenticated;
grant execute on function public.purge_chat_monitoring(interval) to service_role;
