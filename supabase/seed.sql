-- Demo data for local development: a client, a reader, an admin, a client who takes part
-- in nothing (the outsider), and a booking session
-- between the client and the reader with two messages. Idempotent.
-- Tokens for these users: `python -m workers token --user <id> --role <role>` (scripts/dev
-- prints them).

insert into auth.users (id, email, raw_app_meta_data, raw_user_meta_data)
values
(
  '11111111-1111-4111-8111-111111111111', 'client@example.com',
  '{"role": "client"}', '{"full_name": "Demo Client"}'
),
(
  '22222222-2222-4222-8222-222222222222', 'reader@example.com',
  '{"role": "reader"}', '{"full_name": "Demo Reader"}'
),
(
  '33333333-3333-4333-8333-333333333333', 'admin@example.com',
  '{"role": "admin"}', '{"full_name": "Demo Admin"}'
),
(
  '44444444-4444-4444-8444-444444444444', 'outsider@example.com',
  '{"role": "client"}', '{"full_name": "Demo Outsider"}'
)
on conflict (id) do nothing;

insert into public.chat_sessions (id, participants, type, booking_id, title, created_by)
values (
  'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa',
  array['11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222']::uuid[],
  'booking',
  'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb',
  'Demo consultation',
  '11111111-1111-4111-8111-111111111111'
)
on conflict (id) do nothing;

insert into public.chat_messages (id, session_id, sender_id, type, content)
values
(
  'cccccccc-cccc-4ccc-8ccc-000000000001', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa',
  '11111111-1111-4111-8111-111111111111', 'text', 'Hello, I booked a reading for today.'
),
(
  'cccccccc-cccc-4ccc-8ccc-000000000002', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa',
  '22222222-2222-4222-8222-222222222222', 'text', 'Welcome! I am here whenever you are ready.'
)
on conflict (id) do nothing;
