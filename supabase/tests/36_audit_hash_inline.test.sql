-- The audit chain's hash rule: fixed values for a fixed row and link (the rule never
-- changes: every link ever written must verify), and both functions are inlined into
-- the statements that call them (no query of their own per audit row).
begin;
set local search_path = extensions, public;
select plan(5);

create temp table fixed as
select
  row(
    7, 'a0000000-0000-4000-8000-000000000001', 'client', 'message.created',
    '5e000000-0000-4000-8000-000000000001', '3e000000-0000-4000-8000-000000000001',
    '{"via": "relay", "name": "Zoë"}', '2026-12-08 04:30:00.123456+00', '42', null, null
  )::public.chat_audit_logs as e,
  row(
    3, 7, repeat('ab', 32), null, repeat('cd', 32), null, '2026-12-08 04:30:01+00'
  )::chat_private.audit_links as l;

select is(
  (select chat_private.audit_digest(f.e) from fixed as f),
  '05feae203fdbb004941fab80a56d6eaeb143b95a4d496e6086dc269b2e7e6038',
  'The content digest of a fixed audit row is the same as it always was.'
);
select is(
  (select chat_private.audit_hash(f.e, f.l) from fixed as f),
  '8aab655cbcee13f2d5946d2d785fa7b5f6638886e04b95178b7a816bed88077d',
  'The chain hash of a fixed audit row and link is the same as it always was.'
);

-- An inlined SQL function is not called: its calls are not counted, where a function run
-- as a query of its own is (track_functions = all counts SQL functions too).
set local track_functions = 'all';
select is(
  (
    select count(*)::integer
    from fixed as f
    where chat_private.audit_digest(f.e) is not null
      and chat_private.audit_hash(f.e, f.l) is not null
  ),
  1,
  'Both functions are called on the fixed row.'
);
select is(
  (
    select count(*)::integer from pg_stat_xact_user_functions
    where schemaname = 'chat_private' and funcname = 'audit_digest'
  ),
  0,
  'audit_digest is inlined into the statement that calls it.'
);
select is(
  (
    select count(*)::integer from pg_stat_xact_user_functions
    where schemaname = 'chat_private' and funcname = 'audit_hash'
  ),
  0,
  'audit_hash is inlined into the statement that calls it.'
);

select * from finish();
rollback;
