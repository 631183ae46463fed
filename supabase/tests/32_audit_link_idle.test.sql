-- The audit linker is called every 0.2 s. With nothing to link it returns before it locks
-- the chain head (tests/test_audit_trail.py checks that such a call takes no transaction
-- id, which needs a transaction of its own); with rows waiting it links them as before.
begin;
set local search_path = extensions, public;
select plan(4);

select tests.create_chat_fixture();

-- Link whatever the fixture wrote (this transaction's own rows included).
select ok(
  (select l.linked >= 0 from chat_private.link_audit_chain(include_own_transaction => true) as l),
  'The fixture''s audit rows are linked.'
);

select is(
  (select l.linked from chat_private.link_audit_chain(include_own_transaction => true) as l),
  0,
  'Nothing waits: nothing is linked.'
);

insert into public.chat_audit_logs (actor_role, action, details)
values ('service_role', 'test.idle_linker', '{}');

select is(
  (select l.linked from chat_private.link_audit_chain(include_own_transaction => true) as l),
  1,
  'A row waiting is linked as before.'
);

select is(
  (
    select l.chain_seq = h.last_seq
    from public.chat_audit_logs as a
    inner join chat_private.audit_links as l on a.id = l.audit_id
    cross join chat_private.audit_chain_head as h
    where a.action = 'test.idle_linker' and h.id
  ),
  true,
  'The head moved to the row just linked.'
);

select * from finish();
rollback;
