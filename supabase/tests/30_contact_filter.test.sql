-- The contact filter: real-world spellings of phone numbers, e-mail addresses and links
-- are caught; everyday texts of a reading (times, prices, dates, card numbers, tarot card
-- names) pass; each mode (off, flag, mask, block) does what it says, on a user's insert
-- and edit, and links to the platform's own domains pass.
begin;
set local search_path = extensions, public;
select plan(12);

create temp table caught (said text) on commit drop;
insert into caught (said) values
('Call me on +1 (555) 123-4567'),
('my number: 555-123-4567'),
('555.123.4567 after 6pm'),
('text me 5551234567'),
('whatsapp +44 7911 123456'),
('+7 916 123-45-67'),
('+49 30 1234567'),
('0049 30 12345678'),
('(020) 7946 0958'),
('07911 123456'),
('+33 6 12 34 56 78'),
('06.12.34.56.78 c''est moi'),
('+91-98765-43210'),
('ring 5 5 5 1 2 3 4 5 6 7'),
('+1.555.123.4567'),
('my cell is 212 555 0199'),
('+34 612 34 56 78'),
('call +61 4 1234 5678'),
('+55 11 91234-5678'),
('1-800-555-0199'),
('ann.lee@gmail.com'),
('write to reader_77@yahoo.co.uk'),
('ANN@EXAMPLE.ORG please'),
('ann (at) gmail (dot) com'),
('ann [at] gmail [dot] com'),
('ann at gmail dot com'),
('mail me: a.b-c+tag@sub.domain.io'),
('first.last@company.net ok?'),
('support@tarot-center.com'),
('me@mail.ru'),
('https://example.com/book'),
('http://my-readings.net'),
('www.myreadings.com'),
('visit cheapreadings.com for less'),
('t.me/annreader'),
('wa.me/15551234567'),
('book on calendly.com/ann'),
('my site: anntarot.xyz'),
('https://bit.ly/3abcde'),
('instagram.com/ann.tarot');

create temp table innocent (said text) on commit drop;
insert into innocent (said) values
('See you at 10:30 tomorrow'),
('The session is from 18:00 to 19:30'),
('It costs $25.50'),
('The price is 1 250 000 rubles'),
('I paid 1,250.00 for the course'),
('I was born on 1990-05-12'),
('Our reading is on 12.05.2024'),
('The Tower is card XVI'),
('You drew the Three of Cups and the Ten of Swords'),
('Cards 3, 7 and 21 came up'),
('Card 13 is Death, but do not fear it'),
('The Wheel of Fortune (X) means change'),
('Ace of Wands, 2 of Pentacles, 9 of Cups'),
('In 2024 and 2025 you will travel'),
('Your lucky numbers are 7 and 22'),
('Room 101, floor 3'),
('I have 3 children aged 4, 7 and 12'),
('That was 20 years ago'),
('Between 1999 and 2001 I lived abroad'),
('Please wait 5 minutes'),
('My grandmother turned 100 last year'),
('Chapter 7, page 212'),
('It happened at 3 am'),
('Meet me at the usual place at noon'),
('Look at the stars tonight'),
('I am at home'),
('That is 50% off'),
('Score: 3-2 for us'),
('Thank you so much!'),
('The Moon (XVIII) is about dreams'),
('See the Hermit, card 9'),
('Version 2.0 of my life'),
('I was there from 2010-2015'),
('Temperature was -5 degrees'),
('the 12 houses of the zodiac'),
('She is 1.65 m tall'),
('Book 3 of 7'),
('Call me later'),
('My email is private, sorry'),
('I love tarot.Readings help me');

select is(
  (
    select count(*)::integer from caught
    where cardinality(chat_private.contact_matches(said, '{}')) = 0
  ),
  0,
  'Every one of the 40 real-world phone, e-mail and link spellings is caught.'
);
select is(
  (
    select array_agg(said) from caught
    where cardinality(chat_private.contact_matches(said, '{}')) = 0
  ),
  null,
  'None is missed (listed when one is).'
);
select is(
  (
    select array_agg(said) from innocent
    where cardinality(chat_private.contact_matches(said, '{}')) > 0
  ),
  null,
  'None of the 40 everyday texts of a reading is caught.'
);
select is(
  chat_private.contact_matches('book at https://tarot-platform.com/book/42', array['tarot-platform.com']),
  '{}'::text[],
  'A link to the platform''s own domain passes.'
);

-- ---------------------------------------------------------------- the modes, as a user
do $$
begin
  perform tests.create_supabase_user('ann', 'ann@chat.test', '{"role": "client"}');
  perform tests.create_supabase_user('bob', 'bob@chat.test', '{"role": "reader"}');
  insert into public.chat_sessions (id, participants, type, created_by)
  values (
    '5e000000-0000-4000-8000-0000000000a1',
    array[tests.uid('ann'), tests.uid('bob')]::uuid [],
    'support', tests.uid('ann')
  );
end
$$;

select chat_private.set_contact_filter('flag', '{}');
select tests.authenticate_as('ann');
select public.send_chat_message(session_id => '5e000000-0000-4000-8000-0000000000a1', content => 'call 555-123-4567');
reset role;
select is(
  (
    select content from public.chat_messages
    where content like 'call 555%'
  ),
  'call 555-123-4567',
  'flag: the message is stored as written...'
);
select is(
  (
    select count(*)::integer from chat_private.reports
    where automatic and category = 'off_platform_contact'
  ),
  1,
  '... and reported automatically.'
);

select chat_private.set_contact_filter('mask', '{}');
select tests.authenticate_as('ann');
select public.send_chat_message(session_id => '5e000000-0000-4000-8000-0000000000a1', content => 'mail ann@gmail.com now');
reset role;
select is(
  (
    select content from public.chat_messages
    where content like 'mail %'
  ),
  'mail [hidden] now',
  'mask: the match is replaced.'
);
select tests.authenticate_as('ann');
select public.edit_chat_message(
  (
    select id from public.chat_messages
    where content like 'mail %'
  ), 'mail me at ann@gmail.com'
);
reset role;
select is(
  (
    select content from public.chat_messages
    where content like 'mail me%'
  ),
  'mail me at [hidden]',
  'mask: an edit is filtered too.'
);

select chat_private.set_contact_filter('block', '{}');
select tests.authenticate_as('ann');
select throws_ok(
  $$ select public.send_chat_message(session_id => '5e000000-0000-4000-8000-0000000000a1', content => 'see www.elsewhere.com') $$,
  'CHCIB', null,
  'block: the message is refused through the send function...'
);
select throws_ok(
  $$ insert into public.chat_messages (session_id, content) values ('5e000000-0000-4000-8000-0000000000a1', 'wa.me/15551234567') $$,
  'CHCIB', null,
  '... and through a direct insert (PostgREST).'
);
select lives_ok(
  $$ select public.send_chat_message(session_id => '5e000000-0000-4000-8000-0000000000a1', content => 'See you at 10:30') $$,
  'block: an innocent message passes.'
);
reset role;

select chat_private.set_contact_filter('off', '{}');
select tests.authenticate_as('ann');
select lives_ok(
  $$ select public.send_chat_message(session_id => '5e000000-0000-4000-8000-0000000000a1', content => 'see www.elsewhere.com') $$,
  'off: nothing is filtered.'
);
reset role;

select * from finish();
rollback;
