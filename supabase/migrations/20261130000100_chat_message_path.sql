-- The message path at the speed of the hardware (group commit, fan-out from the relay,
-- the audit chain linked off the hot path).
--
-- * chat_private.send_chat_messages: a group of sends from the service in one
--   transaction. Each message runs as its own sender: claims and role authenticated set
--   per message, then public.send_chat_message, so RLS and every SQL rule apply exactly as
--   for one send. With isolate, each message runs in its own subtransaction and a bad one
--   fails alone (the service first tries without, and retries with isolate only when the
--   group failed: subtransactions that write cost every snapshot once there are more than
--   64 of them).
-- * Rows written this way carry the transaction-local setting chat.relay_write = on: they
--   do not NOTIFY (the relay that wrote them emits them itself, and NOTIFY takes one
--   server-wide lock at every notifying commit), and the session's last_message_at is set
--   once per group and session, in session order, instead of once per message. Writes from
--   anywhere else (supabase-js, PostgREST, SQL) notify and touch as before.
-- * The audit chain: rows are still written in the same transaction as the change they
--   record, but no longer linked at commit under one locked row. A background linker (one
--   per database, elected by the service with an advisory lock) calls
--   chat_private.link_audit_chain(), which links rows whose writing transaction precedes
--   the xmin of its snapshot (so every row it could ever see before them is already
--   there), in (xact_id, id) order. Every role's audit rows are stamped by the database:
--   created_at, xact_id, and chain columns empty until the linker fills them.

-- ---------------------------------------------------------------- audit: columns
alter table public.chat_audit_logs
add column xact_id xid8,
add column linked_at timestamptz;

comment on column public.chat_audit_logs.xact_id is
'Transaction that wrote the row (stamped on insert): the linker chains a row once its transaction has ended.';
comment on column public.chat_audit_logs.linked_at is
'When the background linker chained the row (its link delay is linked_at - created_at).';

-- The linker's queue: only rows not yet linked, in the order it links them.
create index chat_audit_logs_unlinked on public.chat_audit_logs (xact_id, id)
where chain_seq is null;

-- Rows still pending from the commit-time linker (none after a clean commit) join the
-- chain now, before that linker goes.
do $$
declare
  _id bigint;
begin
  for _id in select a.id from public.chat_audit_logs as a where a.hash is null order by a.id loop
    perform chat_private.link_audit_row(_id);
  end loop;
end
$$;

drop trigger chat_audit_logs_chain on public.chat_audit_logs;
drop function chat_private.link_new_audit_row();
drop function chat_private.link_audit_row(bigint);

comment on table chat_private.audit_chain_head is
'The end of the audit hash chain: one row, locked FOR UPDATE by the linker while it links.';

-- ---------------------------------------------------------------- audit: stamping
-- Whoever inserts (service_role included), the database decides when the row was
-- written and the chain columns are left for the linker.
create or replace function chat_private.stamp_audit_insert() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.created_at := now();
  new.xact_id := pg_current_xact_id();
  new.chain_seq := null;
  new.prev_hash := null;
  new.hash := null;
  new.linked_at := null;
  return new;
end
$$;

create trigger chat_audit_logs_stamp_insert
before insert on public.chat_audit_logs
for each row execute function chat_private.stamp_audit_insert();

revoke all on function chat_private.stamp_audit_insert() from public;

-- Append-only: the one change ever allowed is linking a row (filling chain_seq,
-- prev_hash, hash and linked_at, once), every other column unchanged.
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
        new.details, new.created_at, new.xact_id
      ) is not distinct from (
        old.id, old.actor_id, old.actor_role, old.action, old.session_id, old.message_id,
        old.details, old.created_at, old.xact_id
      ) then
      return new;
    end if;
  end if;
  raise exception 'chat_audit_logs is append-only: % is not allowed', tg_op
    using errcode = '42501';
end
$$;

-- ---------------------------------------------------------------- audit: the linker
-- Link up to max_rows rows, oldest transaction first; returns how many, and the longest
-- wait among them (ms). Only rows whose transaction precedes this snapshot's xmin: every
-- transaction before it has ended, so no row can later appear before one linked now.
-- include_own_transaction also links this transaction's own rows: for tests, which run
-- in one transaction that never commits.
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
    _entry.hash := chat_private.audit_hash(_entry);
    update public.chat_audit_logs as a
    set chain_seq = _entry.chain_seq, prev_hash = _entry.prev_hash, hash = _entry.hash,
      linked_at = _now
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

comment on function chat_private.link_audit_chain(integer, boolean) is
'Chains committed audit rows (the background linker calls it); returns rows linked and the longest wait.';

-- ---------------------------------------------------------------- audit: verification
-- The first linked row that breaks the chain (an edited, inserted or removed row), or
-- null. Rows the linker has not reached yet are not a break: audit_chain_status() counts
-- them.
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
    _prev := _entry.hash;
  end loop;
  if _seq <> _head.last_seq or _prev <> _head.last_hash then
    -- The newest rows are gone: name the last one the head remembers.
    return coalesce(_head.last_id, 0);
  end if;
  -- A row claiming a place the linker never gave (written around the insert stamp).
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

-- Linked rows, the unlinked tail and how long its oldest row has waited.
create or replace function chat_private.audit_chain_status() returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'linked', (select h.last_seq from chat_private.audit_chain_head as h where h.id),
    'unlinked', (select count(*) from public.chat_audit_logs as a where a.chain_seq is null),
    'oldest_unlinked_at', (
      select min(a.created_at) from public.chat_audit_logs as a where a.chain_seq is null
    )
  )
$$;

create or replace function chat_private.verify_audit_chain_as_admin() returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  _broken bigint;
  _status jsonb;
begin
  perform chat_private.require_admin('verify the audit log');
  _broken := chat_private.verify_audit_chain();
  _status := chat_private.audit_chain_status();
  perform chat_private.append_audit(
    'admin.audit.verify', null, null, jsonb_build_object('first_broken_id', _broken)
  );
  return jsonb_build_object(
    'valid', _broken is null,
    'first_broken_id', _broken,
    'checked', coalesce((_status ->> 'linked')::bigint, 0),
    'unlinked', coalesce((_status ->> 'unlinked')::bigint, 0),
    'oldest_unlinked_at', _status -> 'oldest_unlinked_at'
  );
end
$$;

revoke all on function chat_private.link_audit_chain(integer, boolean) from public;
revoke all on function chat_private.audit_chain_status() from public;
revoke all on function chat_private.verify_audit_chain() from public;
revoke all on function chat_private.verify_audit_chain_as_admin() from public;

-- ---------------------------------------------------------------- relay writes
-- Rows the relay wrote (chat.relay_write = on, transaction-local) neither notify nor touch
-- their session one by one: the relay emits them, and send_chat_messages touches each
-- session once per group.
drop trigger chat_messages_notify on public.chat_messages;
create trigger chat_messages_notify
after insert on public.chat_messages
for each row
when (current_setting('chat.relay_write', true) is distinct from 'on')
execute function chat_private.notify_message();

drop trigger chat_messages_touch_session on public.chat_messages;
create trigger chat_messages_touch_session
after insert on public.chat_messages
for each row
when (current_setting('chat.relay_write', true) is distinct from 'on')
execute function chat_private.touch_session_on_message();

-- One message, as its sender (role authenticated, the sender's claims): the same SQL
-- function every other path uses.
create or replace function chat_private.send_as(
  claims text,
  session_id uuid,
  content text,
  type text,
  reply_to_message_id uuid,
  metadata jsonb,
  client_message_id text
) returns public.chat_messages
language plpgsql
security invoker
set search_path = ''
as $$
declare
  _row public.chat_messages;
begin
  perform set_config('request.jwt.claims', claims, true);
  perform set_config('role', 'authenticated', true);
  _row := public.send_chat_message(
    session_id => session_id,
    content => content,
    type => type,
    reply_to_message_id => reply_to_message_id,
    metadata => metadata,
    client_message_id => client_message_id
  );
  perform set_config('role', 'none', true);
  return _row;
end
$$;

create or replace function chat_private.send_chat_messages(
  claims text[],
  session_ids uuid[],
  contents text[],
  types text[],
  reply_to_ids uuid[],
  metadatas jsonb[],
  client_message_ids text[],
  isolate boolean default false
) returns table (
  ord integer,
  id uuid,
  seq bigint,
  session_id uuid,
  sender_id uuid,
  type text,
  content text,
  reply_to_message_id uuid,
  metadata jsonb,
  client_message_id text,
  created_at timestamptz,
  inserted boolean,
  error_state text,
  error_message text
)
language plpgsql
security invoker
set search_path = ''
as $$
declare
  _n integer := coalesce(cardinality(session_ids), 0);
  _row public.chat_messages;
  _xid xid8;
  _sessions uuid [] := '{}'::uuid [];
  _times timestamptz [] := '{}'::timestamptz [];
  _touch record;
begin
  perform set_config('chat.relay_write', 'on', true);
  _xid := pg_current_xact_id();
  for _i in 1 .. _n loop
    _row := null;
    error_state := null;
    error_message := null;
    if isolate then
      begin
        _row := chat_private.send_as(
          claims[_i], session_ids[_i], contents[_i], types[_i], reply_to_ids[_i],
          metadatas[_i], client_message_ids[_i]
        );
      exception when others then
        get stacked diagnostics error_state = returned_sqlstate, error_message = message_text;
      end;
    else
      _row := chat_private.send_as(
        claims[_i], session_ids[_i], contents[_i], types[_i], reply_to_ids[_i],
        metadatas[_i], client_message_ids[_i]
      );
    end if;
    ord := _i;
    id := _row.id;
    seq := _row.seq;
    session_id := _row.session_id;
    sender_id := _row.sender_id;
    type := _row.type;
    content := _row.content;
    reply_to_message_id := _row.reply_to_message_id;
    metadata := _row.metadata;
    client_message_id := _row.client_message_id;
    created_at := _row.created_at;
    inserted := _row.xact_id is not distinct from _xid and _row.id is not null;
    if inserted then
      _sessions := _sessions || _row.session_id;
      _times := _times || _row.created_at;
    end if;
    return next;
  end loop;
  perform set_config('request.jwt.claims', '', true);
  -- Each session once, in id order (no lock-order deadlock between two relays' groups).
  perform set_config('chat.session_touch', 'on', true);
  for _touch in
    select t.sid, max(t.at) as at
    from unnest(_sessions, _times) as t (sid, at)
    group by t.sid
    order by t.sid
  loop
    update public.chat_sessions as s
    set last_message_at = greatest(coalesce(s.last_message_at, _touch.at), _touch.at)
    where s.id = _touch.sid;
  end loop;
  perform set_config('chat.session_touch', 'off', true);
  perform set_config('chat.relay_write', 'off', true);
end
$$;

comment on function chat_private.send_chat_messages(
  text[], uuid[], text[], text[], uuid[], jsonb[], text[], boolean
) is
'Group commit for the service: each message sent as its own sender under RLS; see the migration header.';

revoke all on function chat_private.send_as(text, uuid, text, text, uuid, jsonb, text) from public;
revoke all on function chat_private.send_chat_messages(
  text[], uuid[], text[], text[], uuid[], jsonb[], text[], boolean
) from public;
