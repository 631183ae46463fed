-- The group commit sets each message's sender as request.jwt.claim.sub and .role (read
-- first by auth.uid() and auth.role()) from that message's own claims, and leaves them
-- empty after it: no message and no later statement sees another message's sender.
begin;
set local search_path = extensions, public;
select plan(5);

select tests.create_chat_fixture();

select
  tests.uid('client') as client,
  tests.uid('reader') as reader
\gset

create temp table sent as
select * from chat_private.send_chat_messages(
    array[
      json_build_object('sub', :'client', 'role', 'authenticated')::text,
      json_build_object('role', 'authenticated')::text,
      json_build_object('sub', :'reader', 'role', 'authenticated')::text,
      '',
      json_build_object('sub', :'client', 'role', 'authenticated')::text
    ],
    array_fill('5e000000-0000-4000-8000-000000000001'::uuid, array[5]),
    array['one', 'no sub', 'two', 'no claims', 'three'],
    array_fill('text'::text, array[5]),
    array_fill(null::uuid, array[5]),
    array_fill('{}'::jsonb, array[5]),
    array_fill(null::text, array[5]),
    true
  );

select results_eq(
  $$ select ord, error_state from sent order by ord $$,
  $$ values (1, null::text), (2, '28000'), (3, null), (4, '28000'), (5, null) $$,
  'A message whose claims have no sub is not authenticated, right after one that had one.'
);
select results_eq(
  $$ select sender_id, content from sent where error_state is null order by ord $$,
  format(
    $$ values (%L::uuid, 'one'), (%L::uuid, 'two'), (%L::uuid, 'three') $$,
    :'client', :'reader', :'client'
  ),
  'Each message is stored as the sender of its own claims.'
);
select is(
  coalesce(current_setting('request.jwt.claim.sub', true), ''), '',
  'No sender is left in request.jwt.claim.sub after the group.'
);
select is(
  coalesce(current_setting('request.jwt.claim.role', true), ''), '',
  'No role is left in request.jwt.claim.role after the group.'
);
select is(auth.uid(), null, 'auth.uid() is empty after the group.');

select * from finish();
rollback;
