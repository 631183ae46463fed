-- The audit linker does nothing, and writes nothing, when there is nothing to link.
--
-- link_audit_chain took the chain head FOR UPDATE on every call, and the linker calls it
-- every 0.2 s: even on an idle system each call locked a row, so it took a transaction id
-- and its commit wrote and flushed WAL, five times a second. It now first checks (on the
-- unlinked rows' partial index, without a lock) whether any committed row waits, and
-- returns at once when none does. The links are the same; the head moves as before.

create or replace function chat_private.link_audit_chain(
  max_rows integer default 10000,
  include_own_transaction boolean default false,
  out linked integer,
  out max_delay_ms double precision
)
returns record
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
  _ids bigint [] := '{}'::bigint [];
  _seqs bigint [] := '{}'::bigint [];
  _prevs text [] := '{}'::text [];
  _hashes text [] := '{}'::text [];
  _digests text [] := '{}'::text [];
begin
  linked := 0;
  max_delay_ms := 0;
  _xmin := pg_snapshot_xmin(pg_current_snapshot());
  if include_own_transaction then
    _own := pg_current_xact_id_if_assigned();
  end if;
  -- Nothing to link: return before locking the head, so an idle linker takes no
  -- transaction id and writes no WAL (it is called every 0.2 s).
  if not exists (
    select 1 from public.chat_audit_logs as a
    where a.chain_seq is null and (a.xact_id < _xmin or a.xact_id = _own)
  ) then
    return;
  end if;
  select h.* into _head from chat_private.audit_chain_head as h where h.id for update;
  if not found then
    raise exception 'the audit chain head is missing' using errcode = '55000';
  end if;
  -- The snapshot the links are taken from is the one after the lock, as before.
  _xmin := pg_snapshot_xmin(pg_current_snapshot());
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
    _ids := _ids || _entry.id;
    _seqs := _seqs || _entry.chain_seq;
    _prevs := _prevs || _entry.prev_hash;
    _hashes := _hashes || _entry.hash;
    _digests := _digests || _entry.content_digest;
    _head.last_seq := _entry.chain_seq;
    _head.last_hash := _entry.hash;
    _head.last_id := _entry.id;
    linked := linked + 1;
    max_delay_ms := greatest(max_delay_ms, extract(epoch from _now - _entry.created_at) * 1000);
  end loop;
  if linked > 0 then
    update public.chat_audit_logs as a
    set chain_seq = l.seq, prev_hash = l.prev, hash = l.hash, content_digest = l.digest,
      linked_at = _now
    from unnest(_ids, _seqs, _prevs, _hashes, _digests) as l (id, seq, prev, hash, digest)
    where a.id = l.id;
    update chat_private.audit_chain_head as h
    set last_seq = _head.last_seq, last_hash = _head.last_hash, last_id = _head.last_id,
      updated_at = _now
    where h.id;
  end if;
end
$$;
