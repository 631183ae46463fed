-- Forgetting a person: a delete from auth.users (Supabase Auth's admin API, the dashboard,
-- the service role, SQL) always succeeds and erases the user's chat data in the same
-- transaction, whoever runs it.
--
-- * chat_private.erase_auth_user(), a BEFORE DELETE trigger on auth.users, does the whole
--   erasure before the row goes: sessions where the user was alone are deleted; in the
--   others the user leaves the participants and their messages follow the erasure mode
--   (chat_private.lifecycle_settings.erasure_mode, written by the service from
--   ERASURE_MODE):
--     redact  each message keeps its place, time and type as a tombstone (deleted_at,
--             deleted_reason 'erased'): no sender, content, metadata or file;
--     retain  content and files stay, the sender becomes a deleted user (sender_id null);
--     delete  the messages are deleted; read and delivery cursors that pointed at them
--             move back to the newest remaining message (unread counts do not change).
--   Read and delivery cursors, waiting periods, webhook rows, upload accounting and
--   monitoring events of the user are deleted. Audit rows by or about the user keep their
--   place in the hash chain; their details are erased and the actor becomes a pseudonym.
--   One audit row, user.erased, records who erased, when, and how many rows and files.
-- * Files cannot be removed from SQL on hosted Supabase (Storage owns the bytes): their
--   paths go to chat_private.object_purges, which the service empties through the object
--   store; until then no policy lets anyone read them.
-- * The guards on sessions and messages stay strict. The only way to change what they
--   protect is an erasure of this transaction: a row in chat_private.erasures, which no API
--   role can write (a forged setting does not count).
-- * The audit chain now hashes a digest of each row's personal part (actor and details)
--   instead of the part itself, so erasing it leaves the chain verifiable. Existing rows
--   are re-chained under the new rule once, here, after the old chain was verified; the
--   result, and the old head, are recorded in an audit.chain.upgraded row.
-- * Every relay hears of an erasure (NOTIFY chat_events, kind erased): it disconnects the
--   user's sockets and tells the other participants.

-- ---------------------------------------------------------------- tables
create table chat_private.lifecycle_settings (
  id boolean primary key default true,
  erasure_mode text not null default 'redact',
  updated_at timestamptz not null default now(),
  constraint lifecycle_settings_single_row check (id),
  constraint lifecycle_settings_erasure_mode_check check (
    erasure_mode in ('redact', 'retain', 'delete')
  )
);

comment on table chat_private.lifecycle_settings is
'How the database forgets: erasure_mode applies to every delete from auth.users. The service writes ERASURE_MODE here at start.';

insert into chat_private.lifecycle_settings (id) values (true) on conflict (id) do nothing;

create table chat_private.erasures (
  id bigint generated always as identity primary key,
  kind text not null,
  subject uuid,
  pseudonym uuid not null default gen_random_uuid(),
  mode text not null,
  actor_role text not null,
  xact_id xid8 not null default pg_current_xact_id(),
  sessions uuid[] not null default '{}',
  counts jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  followed_up_at timestamptz,
  constraint erasures_kind_check check (kind in ('user', 'retention')),
  constraint erasures_mode_check check (mode in ('redact', 'retain', 'delete', 'purge'))
);

comment on table chat_private.erasures is
'Each erasure of a user (kind user) or retention purge batch (kind retention). Its row in the current transaction is what lets guarded columns and audit rows change.';
comment on column chat_private.erasures.subject is
'The erased user''s id, kept only until the service has followed up (sockets, files, webhook); then null.';
comment on column chat_private.erasures.pseudonym is
'Stands for the erased user in audit rows (actor_id) from now on.';
comment on column chat_private.erasures.sessions is
'Sessions the user left that still exist: their other participants are told.';

create table chat_private.object_purges (
  storage_path text primary key,
  erasure_id bigint references chat_private.erasures (id) on delete set null,
  reason text not null,
  created_at timestamptz not null default now(),
  constraint object_purges_reason_check check (reason in ('erased', 'retention'))
);

comment on table chat_private.object_purges is
'Objects of chat-files to remove from the store (the service does, through Storage). Unreadable by every policy meanwhile.';

create index erasures_xact_id on chat_private.erasures (xact_id);
create index erasures_pending on chat_private.erasures (id) where followed_up_at is null;
create index object_purges_erasure_id on chat_private.object_purges (erasure_id);

-- ---------------------------------------------------------------- messages: tombstones
alter table public.chat_messages
add column deleted_at timestamptz,
add column deleted_reason text,
add constraint chat_messages_deleted_check check (
  (deleted_at is null) = (deleted_reason is null) and deleted_reason in ('erased')
);

comment on column public.chat_messages.deleted_at is
'Set when the message became a tombstone: it keeps its place, time, type and id, with no content, metadata or file.';
comment on column public.chat_messages.deleted_reason is
'Why it is a tombstone: erased (its sender''s account was deleted).';

-- A text tombstone has no content: the check allows it (NOT VALID, then validated, so the
-- table is scanned without blocking writes).
alter table public.chat_messages drop constraint chat_messages_text_content_check;
alter table public.chat_messages add constraint chat_messages_text_content_check check (
  type not in ('text', 'system') or deleted_at is not null
  or (content is not null and btrim(content) <> '')
) not valid;
alter table public.chat_messages validate constraint chat_messages_text_content_check;

-- ---------------------------------------------------------------- audit: erasable rows
alter table public.chat_audit_logs
add column content_digest text,
add column erased_at timestamptz,
add column erasure_id bigint,
add column legacy_hash text,
add constraint chat_audit_logs_content_digest_check check (content_digest ~ '^[0-9a-f]{64}$'),
add constraint chat_audit_logs_erased_check check ((erased_at is null) = (erasure_id is null));

comment on column public.chat_audit_logs.content_digest is
'sha256 of the row''s personal part (actor_id, details), set when the row is linked. The chain hashes this digest, so the part can be erased and the chain still verifies.';
comment on column public.chat_audit_logs.erased_at is
'When actor_id became a pseudonym and details were erased (an erasure or a retention purge; erasure_id names it).';
comment on column public.chat_audit_logs.legacy_hash is
'The row''s hash under the first chain rule (over the details themselves), before the chain was re-linked over digests.';

revoke all on chat_private.lifecycle_settings, chat_private.erasures, chat_private.object_purges
from public, anon, authenticated, service_role;
alter table chat_private.lifecycle_settings enable row level security;
alter table chat_private.erasures enable row level security;
alter table chat_private.object_purges enable row level security;

-- ---------------------------------------------------------------- erasure helpers
-- Whether this transaction is erasing (any erasure, or that user's). Security definer:
-- the API roles cannot read chat_private.erasures, let alone write a row.
create or replace function chat_private.erasure_in_progress(target_user uuid default null)
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select exists (
    select 1 from chat_private.erasures as e
    where e.xact_id = pg_current_xact_id_if_assigned()
      and (target_user is null or e.subject = target_user)
  )
$$;

-- The personal part of an audit row, hashed: what the chain covers in its place.
create or replace function chat_private.audit_digest(entry public.chat_audit_logs) returns text
language sql
immutable
set search_path = ''
as $$
  select encode(sha256(convert_to(
    jsonb_build_object('actor_id', entry.actor_id, 'details', entry.details)::text, 'UTF8'
  )), 'hex')
$$;

-- Erase audit rows: the actor becomes the erasure's pseudonym (when it was the erased
-- user), details become {erased, erasure}. Their chain fields stay.
create or replace function chat_private.erase_audit_rows(
  target_ids bigint[], erased_user uuid, erasure chat_private.erasures
) returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  _count integer;
begin
  update public.chat_audit_logs as a
  set actor_id = case when a.actor_id = erased_user then erasure.pseudonym else a.actor_id end,
    details = jsonb_build_object('erased', true, 'erasure', erasure.id),
    erased_at = now(),
    erasure_id = erasure.id
  where a.id = any(target_ids) and a.erased_at is null;
  get diagnostics _count = row_count;
  return _count;
end
$$;

-- ---------------------------------------------------------------- audit: the chain
-- The chain hashes the row's public part and the digest of its personal part.
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
        'actor_role', entry.actor_role,
        'action', entry.action,
        'session_id', entry.session_id,
        'message_id', entry.message_id,
        'content_digest', entry.content_digest,
        'created_at', to_char(entry.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
      )::text,
      'UTF8'
    )),
    'hex'
  )
$$;

-- Append-only, with exactly two kinds of update: linking (chain fields and the digest,
-- once) and erasing (actor_id, details, erased_at, erasure_id, once, and only inside an
-- erasure of this transaction).
create or replace function chat_private.refuse_audit_change() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE' then
    if old.hash is null and old.chain_seq is null and old.prev_hash is null
      and new.hash is not null and new.chain_seq is not null and new.prev_hash is not null
      and new.content_digest is not null
      and (
        new.id, new.actor_id, new.actor_role, new.action, new.session_id, new.message_id,
        new.details, new.created_at, new.xact_id, new.erased_at, new.erasure_id
      ) is not distinct from (
        old.id, old.actor_id, old.actor_role, old.action, old.session_id, old.message_id,
        old.details, old.created_at, old.xact_id, old.erased_at, old.erasure_id
      ) then
      return new;
    end if;
    if old.erased_at is null and new.erased_at is not null
      and (
        new.id, new.actor_role, new.action, new.session_id, new.message_id, new.created_at,
        new.xact_id, new.chain_seq, new.prev_hash, new.hash, new.content_digest, new.legacy_hash
      ) is not distinct from (
        old.id, old.actor_role, old.action, old.session_id, old.message_id, old.created_at,
        old.xact_id, old.chain_seq, old.prev_hash, old.hash, old.content_digest, old.legacy_hash
      ) then
      if chat_private.erasure_in_progress() then
        return new;
      end if;
    end if;
  end if;
  raise exception 'chat_audit_logs is append-only: % is not allowed', tg_op
    using errcode = '42501';
end
$$;

-- The linker digests each row as it links it.
create or replace function chat_private.link_audit_chain(
  max_rows integer default 10000,
  include_own_transaction boolean default false,
  out linked integer,
  out max_delay_ms double precision
)
language plpgsql
security definer
set search_path = ''
as $$
declare
  _head chat_private.audit_chain_head;
  _entry public.chat_audit_logs;
  _xmin xid8;
  _own xid8;
  _now timestamptz := clock_timestamp();
begin
  linked := 0;
  max_delay_ms := 0;
  select h.* into _head from chat_private.audit_chain_head as h where h.id for update;
  if not found then
    raise exception 'the audit chain head is missing' using errcode = '55000';
  end if;
  _xmin := pg_snapshot_xmin(pg_current_snapshot());
  if include_own_transaction then
    _own := pg_current_xact_id_if_assigned();
  end if;
  for _entry in
    select a.* from public.chat_audit_logs as a
    where a.chain_seq is null and (a.xact_id < _xmin or a.xact_id = _own)
    order by a.xact_id, a.id
    limit max_rows
  loop
    _entry.chain_seq := _head.last_seq + 1;
    _entry.prev_hash := _head.last_hash;
    _entry.content_digest := chat_private.audit_digest(_entry);
    _entry.hash := chat_private.audit_hash(_entry);
    update public.chat_audit_logs as a
    set chain_seq = _entry.chain_seq, prev_hash = _entry.prev_hash, hash = _entry.hash,
      content_digest = _entry.content_digest, linked_at = _now
    where a.id = _entry.id;
    _head.last_seq := _entry.chain_seq;
    _head.last_hash := _entry.hash;
    _head.last_id := _entry.id;
    linked := linked + 1;
    max_delay_ms := greatest(max_delay_ms, extract(epoch from _now - _entry.created_at) * 1000);
  end loop;
  if linked > 0 then
    update chat_private.audit_chain_head as h
    set last_seq = _head.last_seq, last_hash = _head.last_hash, last_id = _head.last_id,
      updated_at = _now
    where h.id;
  end if;
end
$$;

-- Verification: the chain (order, links, hashes over digests) and, for each row, that its
-- personal part still matches its digest, or was erased by a recorded erasure.
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
begin
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
    if _entry.erased_at is null then
      if _entry.content_digest is distinct from chat_private.audit_digest(_entry) then
        return _entry.id;
      end if;
    elsif _entry.details is distinct from jsonb_build_object('erased', true, 'erasure', _entry.erasure_id)
      or not exists (select 1 from chat_private.erasures as e where e.id = _entry.erasure_id) then
      return _entry.id;
    end if;
    _prev := _entry.hash;
  end loop;
  if _seq <> _head.last_seq or _prev <> _head.last_hash then
    return coalesce(_head.last_id, 0);
  end if;
  select a.* into _entry from public.chat_audit_logs as a
  where a.chain_seq > _head.last_seq
  order by a.chain_seq
  limit 1;
  if found then
    return _entry.id;
  end if;
  return null;
end
$$;

-- Inside an erasure, the row changes it makes are summarized by its own audit row rather
-- than audited one by one (their diffs would copy the very data being erased).
-- chat.erasure is only a hint that saves the lookup on every other write: what counts is
-- the erasure row of this transaction, which no API role can write.
create or replace function chat_private.append_audit(
  audit_action text, target_session_id uuid, target_message_id uuid, audit_details jsonb
) returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  _actor_id uuid;
  _actor_role text;
begin
  if coalesce(current_setting('chat.erasure', true), '') <> ''
    and chat_private.erasure_in_progress() then
    return;
  end if;
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

-- ---------------------------------------------------------------- guards
-- Participants, created_by: fixed, except that an erasure of this transaction removes its
-- user (from the participants; created_by becomes null).
create or replace function chat_private.guard_session_update() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  _erased boolean := false;
begin
  if new.participants is distinct from old.participants
    or new.created_by is distinct from old.created_by then
    _erased := (
      new.created_by is not distinct from old.created_by
      or (new.created_by is null and chat_private.erasure_in_progress(old.created_by))
    ) and (
      new.participants is not distinct from old.participants
      or exists (
        select 1 from unnest(old.participants) as p (user_id)
        where chat_private.erasure_in_progress(p.user_id)
          and new.participants = array_remove(old.participants, p.user_id)
      )
    );
  end if;
  if new.id is distinct from old.id
    or (new.participants is distinct from old.participants and not _erased)
    or new.type is distinct from old.type
    or new.booking_id is distinct from old.booking_id
    or (new.created_by is distinct from old.created_by and not _erased)
    or new.created_at is distinct from old.created_at then
    raise exception 'chat session id, participants, type, booking_id, created_by and created_at cannot change'
      using errcode = '42501';
  end if;
  -- Only admins (and the service role or the owner) may reopen a closed session.
  if old.status = 'closed' and new.status = 'active'
    and coalesce(auth.role(), '') in ('authenticated', 'anon')
    and not chat_private.is_admin() then
    raise exception 'a closed chat session cannot be reopened' using errcode = '55000';
  end if;
  if new.status = 'closed' and old.status = 'active' then
    new.closed_at := now();
  elsif new.status = 'active' then
    new.closed_at := null;
  end if;
  new.updated_at := now();
  return new;
end
$$;

-- The sender is fixed; only an erasure of that sender (this transaction) empties it.
create or replace function chat_private.guard_message_update() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.id is distinct from old.id
    or new.seq is distinct from old.seq
    or new.session_id is distinct from old.session_id
    or new.created_at is distinct from old.created_at
    or new.xact_id is distinct from old.xact_id
    or (
      new.sender_id is distinct from old.sender_id
      and not (new.sender_id is null and chat_private.erasure_in_progress(old.sender_id))
    ) then
    raise exception 'chat message id, seq, session_id, sender_id and created_at cannot change'
      using errcode = '42501';
  end if;
  return new;
end
$$;

-- No policy lets anyone read a file waiting to be removed.
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
  ) and not exists (
    select 1 from chat_private.object_purges as p where p.storage_path = object_name
  );
end
$$;

-- ---------------------------------------------------------------- the erasure
create or replace function chat_private.erase_auth_user() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  _user uuid := old.id;
  _mode text;
  _erasure chat_private.erasures;
  _alone uuid [];
  _shared uuid [];
  _mine bigint [];
  _files integer;
  _messages integer := 0;
  _audit integer;
  _counts jsonb;
begin
  select s.erasure_mode into _mode from chat_private.lifecycle_settings as s where s.id;
  _mode := coalesce(_mode, 'redact');
  insert into chat_private.erasures (kind, subject, mode, actor_role)
  values ('user', _user, _mode, (select a.actor_role from chat_private.audit_actor() as a))
  returning * into _erasure;
  perform set_config('chat.erasure', _erasure.id::text, true);

  -- A session under a legal hold (the retention migration adds chat_private.legal_holds)
  -- is kept as it is: its messages and files stay, only their sender becomes null.
  select
    coalesce(array_agg(s.id) filter (where cardinality(s.participants) = 1), '{}'),
    coalesce(array_agg(s.id) filter (where cardinality(s.participants) > 1), '{}')
  into _alone, _shared
  from public.chat_sessions as s
  where s.participants @> array[_user]
    and not exists (select 1 from chat_private.legal_holds as h where h.session_id = s.id);

  -- Files: every file of a session that goes, and the user's own elsewhere (kept in
  -- retain mode). Uploads not yet sent in a message are the user's too.
  insert into chat_private.object_purges (storage_path, erasure_id, reason)
  select distinct f.path, _erasure.id, 'erased'
  from (
    select m.metadata ->> 'storage_path' as path
    from public.chat_messages as m
    where m.session_id = any(_alone)
      and m.metadata ->> 'storage_path' like m.session_id || '/' || m.sender_id || '/%'
    union all
    select m.metadata ->> 'storage_path'
    from public.chat_messages as m
    where m.sender_id = _user and _mode <> 'retain' and m.session_id = any(_shared)
      and m.metadata ->> 'storage_path' like m.session_id || '/' || m.sender_id || '/%'
    union all
    select u.storage_path from chat_private.pending_uploads as u where u.user_id = _user
  ) as f
  where f.path is not null
  on conflict (storage_path) do nothing;
  get diagnostics _files = row_count;

  -- Audit rows by or about the user, before the rows they describe change or go.
  select coalesce(array_agg(a.id), '{}') into _mine
  from public.chat_audit_logs as a
  where a.erased_at is null and (
    a.actor_id = _user
    or (
      a.session_id = any(_alone || _shared)
      and (a.details::text like '%' || _user::text || '%' or a.session_id = any(_alone))
    )
  );
  _audit := chat_private.erase_audit_rows(_mine, _user, _erasure);

  delete from public.chat_sessions as s where s.id = any(_alone);

  update public.chat_sessions as s
  set participants = array_remove(s.participants, _user)
  where s.id = any(_shared);
  update public.chat_sessions as s set created_by = null where s.created_by = _user;

  if _mode = 'delete' then
    -- Cursors at a message that goes move back to the newest one that stays.
    update public.chat_read_state as r
    set last_read_message_id = k.id, last_read_at = k.created_at, last_read_seq = k.seq
    from public.chat_messages as gone
    cross join lateral (
      select m.id, m.created_at, m.seq from public.chat_messages as m
      where m.session_id = gone.session_id
        and (m.sender_id is distinct from _user or m.type = 'system')
        and (m.created_at, m.seq) < (gone.created_at, gone.seq)
      order by m.created_at desc, m.seq desc
      limit 1
    ) as k
    where gone.sender_id = _user and gone.type <> 'system' and gone.session_id = any(_shared)
      and r.session_id = gone.session_id and r.last_read_message_id = gone.id;
    update public.chat_delivery_state as d
    set last_delivered_message_id = k.id, last_delivered_at = k.created_at,
      last_delivered_seq = k.seq
    from public.chat_messages as gone
    cross join lateral (
      select m.id, m.created_at, m.seq from public.chat_messages as m
      where m.session_id = gone.session_id
        and (m.sender_id is distinct from _user or m.type = 'system')
        and (m.created_at, m.seq) < (gone.created_at, gone.seq)
      order by m.created_at desc, m.seq desc
      limit 1
    ) as k
    where gone.sender_id = _user and gone.type <> 'system' and gone.session_id = any(_shared)
      and d.session_id = gone.session_id and d.last_delivered_message_id = gone.id;
    delete from public.chat_messages as m
    where m.sender_id = _user and m.type <> 'system' and m.session_id = any(_shared);
    get diagnostics _messages = row_count;
  elsif _mode = 'redact' then
    update public.chat_messages as m
    set sender_id = null, content = null, metadata = '{}'::jsonb, client_message_id = null,
      deleted_at = now(), deleted_reason = 'erased'
    where m.sender_id = _user and m.type <> 'system' and m.session_id = any(_shared);
    get diagnostics _messages = row_count;
  end if;
  -- What is left of the user's (system notices; every message in retain mode).
  update public.chat_messages as m set sender_id = null where m.sender_id = _user;
  if _mode = 'retain' then
    get diagnostics _messages = row_count;
  end if;

  delete from public.chat_read_state as r where r.user_id = _user;
  delete from public.chat_delivery_state as d where d.user_id = _user;
  delete from chat_private.webhook_waiting as w where w.user_id = _user;
  delete from chat_private.webhook_outbox as o
  where o.user_id = _user or o.payload::text like '%' || _user::text || '%';
  delete from chat_private.pending_uploads as u where u.user_id = _user;
  delete from chat_private.upload_usage as u where u.user_id = _user;
  delete from public.chat_monitoring as e where e.user_id = _user;

  -- What Realtime still holds of the user (its rows are kept three days).
  if to_regclass('realtime.messages') is not null then
    execute 'delete from realtime.messages where topic like ''chat:%'' '
      || 'and (payload ->> ''sender_id'' = $1 or payload ->> ''user_id'' = $1)'
    using _user::text;
  end if;

  _counts := jsonb_build_object(
    'mode', _mode,
    'sessions_deleted', cardinality(_alone),
    'sessions_left', cardinality(_shared),
    'messages', _messages,
    'files', _files,
    'audit_rows_erased', _audit
  );
  update chat_private.erasures as e set sessions = _shared, counts = _counts
  where e.id = _erasure.id;

  -- The erasure's own record (its actor: whoever deleted the user); from here on the
  -- transaction is audited as usual.
  perform set_config('chat.erasure', '', true);
  perform chat_private.append_audit(
    'user.erased', null, null,
    _counts || jsonb_build_object('erasure_id', _erasure.id, 'pseudonym', _erasure.pseudonym)
  );
  perform pg_notify(
    'chat_events',
    json_build_object('kind', 'erased', 'user_id', _user, 'erasure_id', _erasure.id)::text
  );
  return old;
end
$$;

create trigger chat_erase_user
before delete on auth.users
for each row execute function chat_private.erase_auth_user();

-- ---------------------------------------------------------------- the service's follow-up
-- Sessions whose participants are told, and the mode (what happened to the messages), for
-- a relay that heard of an erasure.
create or replace function chat_private.erasure_sessions(target_erasure_id bigint)
returns table (sessions uuid[], mode text)
language sql
stable
security definer
set search_path = ''
as $$
  select e.sessions, e.mode from chat_private.erasures as e where e.id = target_erasure_id
$$;

-- Erasures the service has not followed up yet, with the files still to remove.
create or replace function chat_private.pending_erasures(max_rows integer default 100)
returns table (
  erasure_id bigint, subject uuid, mode text, counts jsonb, created_at timestamptz,
  files_left bigint
)
language sql
stable
security definer
set search_path = ''
as $$
  select e.id, e.subject, e.mode, e.counts, e.created_at,
    (select count(*) from chat_private.object_purges as p where p.erasure_id = e.id)
  from chat_private.erasures as e
  where e.followed_up_at is null and e.kind = 'user'
  order by e.id
  limit max_rows
$$;

-- Paths to remove from the store, oldest first; the service drops each once it is gone.
create or replace function chat_private.objects_to_purge(max_rows integer default 200)
returns setof text
language sql
stable
security definer
set search_path = ''
as $$
  select p.storage_path from chat_private.object_purges as p
  order by p.created_at, p.storage_path
  limit max_rows
$$;

create or replace function chat_private.object_purged(target_path text) returns void
language sql
security definer
set search_path = ''
as $$
  delete from chat_private.object_purges as p where p.storage_path = target_path
$$;

-- The follow-up is done (files removed, sockets told, webhook queued): the audit rows the
-- file removals wrote are erased like the others, and the user's id is dropped.
create or replace function chat_private.finish_erasure(target_erasure_id bigint) returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  _erasure chat_private.erasures;
  _ids bigint [];
begin
  select e.* into _erasure from chat_private.erasures as e
  where e.id = target_erasure_id and e.followed_up_at is null
  for update;
  if not found then
    return false;
  end if;
  if exists (select 1 from chat_private.object_purges as p where p.erasure_id = _erasure.id) then
    return false;
  end if;
  if _erasure.subject is not null then
    -- This transaction erases too (so the audit rows may change), under the same pseudonym.
    insert into chat_private.erasures (kind, subject, pseudonym, mode, actor_role, followed_up_at)
    values ('user', _erasure.subject, _erasure.pseudonym, _erasure.mode, 'service_role', now());
    select coalesce(array_agg(a.id), '{}') into _ids
    from public.chat_audit_logs as a
    where a.created_at >= _erasure.created_at and a.erased_at is null
      and (a.actor_id = _erasure.subject or a.details::text like '%' || _erasure.subject::text || '%');
    perform chat_private.erase_audit_rows(_ids, _erasure.subject, _erasure);
    update chat_private.erasures as e set subject = null
    where e.xact_id = pg_current_xact_id_if_assigned();
  end if;
  update chat_private.erasures as e set subject = null, followed_up_at = now()
  where e.id = _erasure.id;
  return true;
end
$$;

-- The service writes ERASURE_MODE here at start.
create or replace function chat_private.set_erasure_mode(mode text) returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  if mode not in ('redact', 'retain', 'delete') then
    raise exception 'erasure mode must be redact, retain or delete' using errcode = '22023';
  end if;
  update chat_private.lifecycle_settings as s set erasure_mode = mode, updated_at = now()
  where s.id and s.erasure_mode is distinct from mode;
end
$$;

revoke all on function chat_private.erasure_in_progress(uuid),
chat_private.audit_digest(public.chat_audit_logs),
chat_private.erase_audit_rows(bigint[], uuid, chat_private.erasures),
chat_private.erase_auth_user(), chat_private.erasure_sessions(bigint),
chat_private.pending_erasures(integer), chat_private.objects_to_purge(integer),
chat_private.object_purged(text), chat_private.finish_erasure(bigint),
chat_private.set_erasure_mode(text)
from public, anon, authenticated, service_role;
-- The guards run as the caller: the API roles that may write call this one (it answers
-- about the caller's own transaction only).
grant execute on function chat_private.erasure_in_progress(uuid) to authenticated, service_role;
grant execute on function chat_private.erasure_sessions(bigint), chat_private.pending_erasures(integer),
chat_private.objects_to_purge(integer), chat_private.object_purged(text),
chat_private.finish_erasure(bigint), chat_private.set_erasure_mode(text)
to service_role;

-- ---------------------------------------------------------------- webhooks
alter table chat_private.webhook_outbox drop constraint webhook_outbox_event_type_check;
alter table chat_private.webhook_outbox add constraint webhook_outbox_event_type_check check (
  event_type in (
    'chat.message.waiting', 'chat.session.created', 'chat.session.closed', 'chat.user.erased'
  )
);

-- ---------------------------------------------------------------- the chain, re-linked
-- Every linked row is re-hashed under the digest rule, in chain order, after the old
-- chain was verified under its own rule; the old hash stays in legacy_hash.
do $$
declare
  _old_valid boolean;
  _old_broken bigint;
  _old_head text;
  _head chat_private.audit_chain_head;
  _entry public.chat_audit_logs;
  _prev text := repeat('0', 64);
  _count bigint := 0;
begin
  select h.* into _head from chat_private.audit_chain_head as h where h.id for update;
  _old_head := _head.last_hash;
  -- The previous rule, inline (audit_hash now follows the new one).
  for _entry in
    select a.* from public.chat_audit_logs as a
    where a.chain_seq <= _head.last_seq order by a.chain_seq
  loop
    if _old_broken is null and (
      _entry.prev_hash is distinct from _prev
      or _entry.hash is distinct from encode(sha256(convert_to(
        _entry.prev_hash || '|' || jsonb_build_object(
          'id', _entry.id, 'chain_seq', _entry.chain_seq, 'actor_id', _entry.actor_id,
          'actor_role', _entry.actor_role, 'action', _entry.action,
          'session_id', _entry.session_id, 'message_id', _entry.message_id,
          'details', _entry.details,
          'created_at', to_char(_entry.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
        )::text, 'UTF8')), 'hex')
    ) then
      _old_broken := _entry.id;
    end if;
    _prev := _entry.hash;
  end loop;
  _old_valid := _old_broken is null;

  alter table public.chat_audit_logs disable trigger chat_audit_logs_append_only;
  _prev := repeat('0', 64);
  for _entry in
    select a.* from public.chat_audit_logs as a
    where a.chain_seq <= _head.last_seq order by a.chain_seq
  loop
    _entry.legacy_hash := _entry.hash;
    _entry.prev_hash := _prev;
    _entry.content_digest := chat_private.audit_digest(_entry);
    _entry.hash := chat_private.audit_hash(_entry);
    update public.chat_audit_logs as a
    set legacy_hash = _entry.legacy_hash, prev_hash = _entry.prev_hash,
      content_digest = _entry.content_digest, hash = _entry.hash
    where a.id = _entry.id;
    _prev := _entry.hash;
    _count := _count + 1;
  end loop;
  alter table public.chat_audit_logs enable trigger chat_audit_logs_append_only;
  if _count > 0 then
    update chat_private.audit_chain_head as h set last_hash = _prev, updated_at = now() where h.id;
  end if;
  perform chat_private.append_audit(
    'audit.chain.upgraded', null, null,
    jsonb_build_object(
      'rule', 'sha256(prev_hash | public fields | sha256(actor_id, details))',
      'rows_relinked', _count,
      'previous_head_hash', _old_head,
      'previous_chain_valid', _old_valid,
      'previous_first_broken_id', _old_broken
    )
  );
end
$$;
