-- The audit chain's links live in a table of their own, written once by the linker,
-- instead of in columns of chat_audit_logs that the linker filled in with an UPDATE.
--
-- Why: linking rewrote every audit row. The UPDATE could not be HOT (chain_seq is in a
-- unique index and in the predicate of the unlinked rows' partial index), so each audit
-- row was written twice: a second 500-byte version on another page, a row lock, six
-- B-tree entries more, the append-only trigger and four CHECK constraints, and a dead
-- version left for vacuum. At 1,000 messages a second that was about a tenth of
-- PostgreSQL's CPU. A link is now one narrow insert (two B-tree entries), and an audit
-- row is written once and never changed, unless an erasure redacts it.
--
-- * chat_private.audit_links: one row per linked audit row, in chain order (chain_seq,
--   audit_id, prev_hash, hash, content_digest, legacy_hash, linked_at). Append-only: a
--   trigger refuses UPDATE, DELETE and TRUNCATE to everyone, the owner included unless it
--   disables the trigger. No API role can read or write it; the admin API serves the
--   chain fields beside each row as before.
-- * No foreign key to chat_audit_logs: audit rows are never deleted (their own trigger
--   refuses it), and the check would cost a query per link. verify_audit_chain() names a
--   link whose audit row is gone.
-- * Finding the rows to link: chat_private.audit_chain_head now also holds a position in
--   (xact_id, id) order, linked_through_xact and linked_through_id: every audit row at or
--   before it is linked. The linker reads on from there on an index of (xact_id, id),
--   only rows whose transaction precedes its snapshot's xmin (no transaction can still
--   add a row there), and skips rows already linked (the unique audit_id). Linking the
--   caller's own transaction (tests) does not move the position, so rows of older
--   transactions that commit later are still found. A position this server's transaction
--   ids have not reached (a restore into another cluster) starts again from the beginning.
-- * The existing links move here unchanged (the chain verifies as before), and the six
--   columns (legacy_hash with them), their unique index, their CHECK constraints and the
--   partial index go. The hash rule is unchanged: audit_hash() takes the link beside the
--   row. verify_audit_chain() also names a row the chain passed by (at or before the
--   position, without a link).
-- * While it runs, the migration holds chat_audit_logs and the chain head exclusively: a
--   linker waits (and then goes on with the new function), and so does every audited
--   change, reads of the audit log too, while it copies the links and builds the index of
--   (xact_id, id): plan it for a quiet moment on a large audit log.

-- No linker may run while the links move: it would write chain columns this migration
-- has already copied, and then drops. Both tables are locked first, in the order a linker
-- reads them (the head, then the audit rows), so that a linker already running finishes
-- first and one starting later waits holding nothing (no deadlock), and audited writes
-- wait until the migration commits. The CLI runs a migration file as one transaction,
-- but not as a transaction block, where LOCK is refused: hence the DO block.
do $$
begin
  lock table chat_private.audit_chain_head, public.chat_audit_logs in access exclusive mode;
end
$$;

-- ---------------------------------------------------------------- the links
create table chat_private.audit_links (
  chain_seq bigint primary key,
  audit_id bigint not null,
  prev_hash text not null,
  hash text not null,
  content_digest text not null,
  legacy_hash text,
  linked_at timestamptz not null default now(),
  constraint audit_links_audit_id_key unique (audit_id),
  constraint audit_links_chain_seq_check check (chain_seq > 0),
  -- 64 lowercase hex digits. Not as '^[0-9a-f]{64}$': PostgreSQL's regular expressions
  -- run a bounded repeat slowly, and those three checks took 40 % of the linker's CPU.
  constraint audit_links_hash_check check (
    char_length(hash) = 64 and hash !~ '[^0-9a-f]'
    and char_length(prev_hash) = 64 and prev_hash !~ '[^0-9a-f]'
  ),
  constraint audit_links_content_digest_check check (
    char_length(content_digest) = 64 and content_digest !~ '[^0-9a-f]'
  )
);

comment on table chat_private.audit_links is
'The audit hash chain: one row per linked chat_audit_logs row (audit_id), in chain order. Written once by link_audit_chain(); append-only.';
comment on column chat_private.audit_links.chain_seq is
'Place in the chain: 1, 2, 3, ... without a gap.';
comment on column chat_private.audit_links.prev_hash is
'The hash of the link before (64 zeros for the first).';
comment on column chat_private.audit_links.hash is
'sha256 of prev_hash, a bar, and the audit row''s public part with content_digest (chat_private.audit_hash).';
comment on column chat_private.audit_links.content_digest is
'sha256 of the audit row''s personal part (actor_id, details) when it was linked. The chain hashes this digest, so the part can be erased and the chain still verifies.';
comment on column chat_private.audit_links.legacy_hash is
'The row''s hash under the first chain rule (over the details themselves), for rows linked before the chain was re-linked over digests.';
comment on column chat_private.audit_links.linked_at is
'When the linker chained the row (its link delay is linked_at - created_at).';

revoke all on chat_private.audit_links from public, anon, authenticated, service_role;
alter table chat_private.audit_links enable row level security;

create function chat_private.refuse_audit_link_change() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception 'chat_private.audit_links is append-only: % is not allowed', tg_op
    using errcode = '42501';
end
$$;

revoke all on function chat_private.refuse_audit_link_change() from public, anon, authenticated, service_role;

create trigger audit_links_append_only
before update or delete on chat_private.audit_links
for each row execute function chat_private.refuse_audit_link_change();

create trigger audit_links_no_truncate
before truncate on chat_private.audit_links
for each statement execute function chat_private.refuse_audit_link_change();

-- The links so far, unchanged. A row given a chain place without a digest (possible only
-- by tampering) gets 64 zeros, which verify_audit_chain() then names.
insert into chat_private.audit_links (
  chain_seq, audit_id, prev_hash, hash, content_digest, legacy_hash, linked_at
)
select
  a.chain_seq,
  a.id,
  a.prev_hash,
  a.hash,
  coalesce(a.content_digest, repeat('0', 64)) as content_digest,
  a.legacy_hash,
  coalesce(a.linked_at, a.created_at) as linked_at
from public.chat_audit_logs as a
where a.chain_seq is not null;

-- ---------------------------------------------------------------- where the linker reads on
create index chat_audit_logs_xact on public.chat_audit_logs (xact_id, id);

alter table chat_private.audit_chain_head
add column linked_through_xact xid8 not null default '0'::xid8,
add column linked_through_id bigint not null default 0;

comment on column chat_private.audit_chain_head.linked_through_xact is
'With linked_through_id: every audit row at or before (xact_id, id) = (linked_through_xact, linked_through_id) is linked; the linker reads on from there.';

-- The last row before both the first row still unlinked and every transaction still
-- running (one of those may yet write an audit row that sorts before rows already here).
do $$
declare
  _xmin xid8 := pg_snapshot_xmin(pg_current_snapshot());
  _first_xact xid8;
  _first_id bigint;
  _xact xid8;
  _id bigint;
begin
  select a.xact_id, a.id into _first_xact, _first_id
  from public.chat_audit_logs as a
  where a.chain_seq is null and a.xact_id is not null
  order by a.xact_id, a.id
  limit 1;
  select a.xact_id, a.id into _xact, _id
  from public.chat_audit_logs as a
  where a.xact_id < _xmin
    and (_first_xact is null or (a.xact_id, a.id) < (_first_xact, _first_id))
  order by a.xact_id desc, a.id desc
  limit 1;
  update chat_private.audit_chain_head as h
  set linked_through_xact = coalesce(_xact, '0'::xid8), linked_through_id = coalesce(_id, 0)
  where h.id;
end
$$;

comment on table chat_private.audit_chain_head is
'The end of the audit hash chain and how far the linker has read: one row, locked FOR UPDATE by the linker while it links.';

-- ---------------------------------------------------------------- the chain columns go
drop index public.chat_audit_logs_unlinked;
drop function chat_private.audit_hash(public.chat_audit_logs);
alter table public.chat_audit_logs
drop column chain_seq,
drop column prev_hash,
drop column hash,
drop column linked_at,
drop column content_digest,
drop column legacy_hash;

-- ---------------------------------------------------------------- the hash rule, unchanged
-- The chain hashes the row's public part and the digest of its personal part.
create function chat_private.audit_hash(
  entry public.chat_audit_logs, link chat_private.audit_links
)
returns text
language sql
stable
set search_path = ''
as $$
  select encode(
    sha256(convert_to(
      link.prev_hash || '|' || jsonb_build_object(
        'id', entry.id,
        'chain_seq', link.chain_seq,
        'actor_role', entry.actor_role,
        'action', entry.action,
        'session_id', entry.session_id,
        'message_id', entry.message_id,
        'content_digest', link.content_digest,
        'created_at', to_char(entry.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
      )::text,
      'UTF8'
    )),
    'hex'
  )
$$;

revoke all on function chat_private.audit_hash(public.chat_audit_logs, chat_private.audit_links)
from public, anon, authenticated, service_role;

-- ---------------------------------------------------------------- audit rows: written once
create or replace function chat_private.stamp_audit_insert() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.created_at := now();
  new.xact_id := pg_current_xact_id();
  return new;
end
$$;

-- Append-only, with one kind of update: erasing (actor_id, details, erased_at, erasure_id,
-- once, and only inside an erasure of this transaction).
create or replace function chat_private.refuse_audit_change() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE'
    and old.erased_at is null and new.erased_at is not null
    and (
      new.id, new.actor_role, new.action, new.session_id, new.message_id, new.created_at,
      new.xact_id
    ) is not distinct from (
      old.id, old.actor_role, old.action, old.session_id, old.message_id, old.created_at,
      old.xact_id
    ) then
    -- A statement of its own: anon has no access to chat_private, and must get the
    -- append-only error below, not a permission error from this call.
    if chat_private.erasure_in_progress() then
      return new;
    end if;
  end if;
  raise exception 'chat_audit_logs is append-only: % is not allowed', tg_op
    using errcode = '42501';
end
$$;

-- ---------------------------------------------------------------- the linker
-- The rows to link are read in (xact_id, id) order from the head's position, on the index
-- of (xact_id, id), bounded above by the snapshot's xmin (or the caller's own transaction),
-- so that rows waiting behind a long transaction are not read again on every call. Whether
-- a row is linked already is asked row by row (one probe of audit_links' audit_id):
-- written as an anti-join, the planner may hash the whole of audit_links, which grows
-- without end, to find the few rows after the position.
--
-- A position at or past the next transaction id to be assigned cannot come from this
-- server: the database was restored into another cluster (pg_dump and restore), whose
-- transaction ids start elsewhere. The position then starts again from the beginning, and
-- the rows already linked are skipped (scanned counts them, so the linker goes on at once).
drop function chat_private.link_audit_chain(integer, boolean);

create function chat_private.link_audit_chain(
  max_rows integer default 10000,
  include_own_transaction boolean default false,
  out linked integer,
  out max_delay_ms double precision,
  out scanned integer
)
returns record
language plpgsql
security definer
set search_path = ''
as $$
declare
  _head chat_private.audit_chain_head;
  _entry public.chat_audit_logs;
  _link chat_private.audit_links;
  _xmin xid8;
  _own xid8;
  _upto xid8;
  _moved boolean := false;
  _now timestamptz := clock_timestamp();
  _seqs bigint [] := '{}'::bigint [];
  _ids bigint [] := '{}'::bigint [];
  _prevs text [] := '{}'::text [];
  _hashes text [] := '{}'::text [];
  _digests text [] := '{}'::text [];
begin
  linked := 0;
  max_delay_ms := 0;
  scanned := 0;
  if include_own_transaction then
    _own := pg_current_xact_id_if_assigned();
  end if;
  select h.* into _head from chat_private.audit_chain_head as h where h.id;
  if not found then
    raise exception 'the audit chain head is missing' using errcode = '55000';
  end if;
  _xmin := pg_snapshot_xmin(pg_current_snapshot());
  _upto := coalesce(_own, _xmin);
  -- Nothing after the position: return before locking the head, so an idle linker takes
  -- no transaction id and writes no WAL (it is called every 0.2 s). In index order:
  -- written as EXISTS, the planner may expect an early match in a sequential scan, which
  -- then reads the whole table when nothing waits.
  if _head.linked_through_xact < pg_snapshot_xmax(pg_current_snapshot()) then
    perform 1 from public.chat_audit_logs as a
    where (a.xact_id, a.id) > (_head.linked_through_xact, _head.linked_through_id)
      and a.xact_id <= _upto
      and (a.xact_id < _xmin or a.xact_id = _own)
    order by a.xact_id, a.id
    limit 1;
    if not found then
      return;
    end if;
  end if;
  select h.* into _head from chat_private.audit_chain_head as h where h.id for update;
  -- The snapshot the links are taken from is the one after the lock.
  _xmin := pg_snapshot_xmin(pg_current_snapshot());
  _upto := coalesce(_own, _xmin);
  if _head.linked_through_xact >= pg_snapshot_xmax(pg_current_snapshot()) then
    _head.linked_through_xact := '0'::xid8;
    _head.linked_through_id := 0;
    _moved := true;
  end if;
  -- Rows of finished transactions, then this transaction's own (tests: its xact_id is
  -- above every finished one). The position follows the finished transactions' rows
  -- only: an older transaction still running may yet add rows before the own ones.
  for _entry in
    select a.* from public.chat_audit_logs as a
    where (a.xact_id, a.id) > (_head.linked_through_xact, _head.linked_through_id)
      and a.xact_id <= _upto
      and (a.xact_id < _xmin or a.xact_id = _own)
    order by a.xact_id, a.id
    limit max_rows
  loop
    scanned := scanned + 1;
    if _entry.xact_id < _xmin then
      _head.linked_through_xact := _entry.xact_id;
      _head.linked_through_id := _entry.id;
      _moved := true;
    end if;
    -- Linked already: a row of the caller's own transaction linked by an earlier call,
    -- or, after a restore into another cluster, every row linked before it.
    continue when exists (
      select 1 from chat_private.audit_links as l where l.audit_id = _entry.id
    );
    _link.chain_seq := _head.last_seq + 1;
    _link.prev_hash := _head.last_hash;
    _link.content_digest := chat_private.audit_digest(_entry);
    _link.hash := chat_private.audit_hash(_entry, _link);
    _seqs := _seqs || _link.chain_seq;
    _ids := _ids || _entry.id;
    _prevs := _prevs || _link.prev_hash;
    _hashes := _hashes || _link.hash;
    _digests := _digests || _link.content_digest;
    _head.last_seq := _link.chain_seq;
    _head.last_hash := _link.hash;
    _head.last_id := _entry.id;
    linked := linked + 1;
    max_delay_ms := greatest(max_delay_ms, extract(epoch from _now - _entry.created_at) * 1000);
  end loop;
  if linked > 0 then
    insert into chat_private.audit_links (
      chain_seq, audit_id, prev_hash, hash, content_digest, linked_at
    )
    select l.seq, l.id, l.prev, l.hash, l.digest, _now
    from unnest(_seqs, _ids, _prevs, _hashes, _digests) as l (seq, id, prev, hash, digest);
  end if;
  if linked > 0 or _moved then
    update chat_private.audit_chain_head as h
    set last_seq = _head.last_seq, last_hash = _head.last_hash, last_id = _head.last_id,
      linked_through_xact = _head.linked_through_xact,
      linked_through_id = _head.linked_through_id,
      updated_at = _now
    where h.id;
  end if;
end
$$;

revoke all on function chat_private.link_audit_chain(integer, boolean)
from public, anon, authenticated, service_role;

comment on function chat_private.link_audit_chain(integer, boolean) is
'Chains committed audit rows (the background linker calls it); returns rows linked, the longest wait, and rows read past the position (linked or found linked already): a linker calls again at once while that reaches max_rows.';

-- ---------------------------------------------------------------- verification
create or replace function chat_private.verify_audit_chain() returns bigint
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  _head chat_private.audit_chain_head;
  _link chat_private.audit_links;
  _entry public.chat_audit_logs;
  _prev text := repeat('0', 64);
  _seq bigint := 0;
begin
  select h.* into _head from chat_private.audit_chain_head as h where h.id;
  if not found then
    return 0;
  end if;
  for _link in
    select l.* from chat_private.audit_links as l
    where l.chain_seq <= _head.last_seq
    order by l.chain_seq
  loop
    _seq := _seq + 1;
    select a.* into _entry from public.chat_audit_logs as a where a.id = _link.audit_id;
    if not found
      or _link.chain_seq <> _seq
      or _link.prev_hash is distinct from _prev
      or _link.hash is distinct from chat_private.audit_hash(_entry, _link) then
      return _link.audit_id;
    end if;
    if _entry.erased_at is null then
      if _link.content_digest is distinct from chat_private.audit_digest(_entry) then
        return _link.audit_id;
      end if;
    elsif _entry.details is distinct from jsonb_build_object('erased', true, 'erasure', _entry.erasure_id)
      or not exists (select 1 from chat_private.erasures as e where e.id = _entry.erasure_id) then
      return _link.audit_id;
    end if;
    _prev := _link.hash;
  end loop;
  if _seq <> _head.last_seq or _prev <> _head.last_hash then
    return coalesce(_head.last_id, 0);
  end if;
  select l.* into _link from chat_private.audit_links as l
  where l.chain_seq > _head.last_seq
  order by l.chain_seq
  limit 1;
  if found then
    return _link.audit_id;
  end if;
  -- A row the chain passed by: at or before the linker's position (or without a
  -- transaction id, which only a row written around the insert stamp lacks) and without
  -- a link. Rows after the position are still to be linked, not a break.
  select a.* into _entry from public.chat_audit_logs as a
  where (
    a.xact_id is null
    or (a.xact_id, a.id) <= (_head.linked_through_xact, _head.linked_through_id)
  )
  and not exists (select 1 from chat_private.audit_links as l where l.audit_id = a.id)
  order by a.id
  limit 1;
  if found then
    return _entry.id;
  end if;
  return null;
end
$$;

-- How much is linked, and the unlinked tail: the rows after the head's position not yet
-- linked. The count is planned with the position's values (EXECUTE), so that it reads the
-- index range after the position, and asks audit_links row by row (a scalar subquery,
-- which the planner does not turn into a join that would hash the whole table).
create or replace function chat_private.audit_chain_status() returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  _head chat_private.audit_chain_head;
  _unlinked bigint;
  _oldest timestamptz;
begin
  select h.* into _head from chat_private.audit_chain_head as h where h.id;
  execute $q$
    select count(*), min(a.created_at)
    from public.chat_audit_logs as a
    where (a.xact_id, a.id) > ($1, $2)
      and not (
        select exists (select 1 from chat_private.audit_links as l where l.audit_id = a.id)
      )
  $q$
  into _unlinked, _oldest
  using coalesce(_head.linked_through_xact, '0'::xid8), coalesce(_head.linked_through_id, 0);
  return jsonb_build_object(
    'linked', _head.last_seq, 'unlinked', _unlinked, 'oldest_unlinked_at', _oldest
  );
end
$$;

-- ---------------------------------------------------------------- the admin's page
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
      a.created_at, l.chain_seq, l.prev_hash, l.hash
    from (
      select a.* from public.chat_audit_logs as a
      where (target_session_id is null or a.session_id = target_session_id)
        and (target_user_id is null or a.actor_id = target_user_id)
        and (target_action is null or a.action = target_action)
        and (since is null or a.created_at >= since)
        and (until is null or a.created_at < until)
      order by a.created_at desc, a.id desc
      limit max_rows
      offset skip_rows
    ) as a
    left join chat_private.audit_links as l on l.audit_id = a.id
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

comment on function chat_private.audit_hash(public.chat_audit_logs, chat_private.audit_links) is
'The hash of an audit row at its place in the chain: sha256 of the link''s prev_hash, a bar, and the row''s public part with the link''s chain_seq and content_digest.';
