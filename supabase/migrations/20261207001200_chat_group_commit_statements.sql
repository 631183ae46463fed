-- The relay's group commit runs fewer statements per group.
--
-- A group of one message (what the relay writes at a few hundred messages a second, when
-- each send finds a free connection) cost PostgreSQL about twice the CPU of a message in a
-- group of ten: most of a small group's cost is starting statements, not storing rows.
-- Three kinds of statement are gone or cheaper:
--
-- * PL/pgSQL runs `perform f(...)` as a query of its own (planned, an executor started and
--   ended); `_x := f(...)` is evaluated as a simple expression, without an executor. The
--   group's five set_config calls and the three of each message are now assignments, and
--   chat_private.record_group_messages returns the number of messages it was given so
--   that it can be called the same way.
-- * A group whose messages all went to one session (every group of one message) moves
--   that session's last_message_at with one UPDATE; only a group of several sessions reads
--   them back sorted, to update them in id order (no lock-order deadlock between two
--   relays' groups).
-- * The session audit trigger's condition compared both row versions as JSON
--   (to_jsonb(old) and to_jsonb(new), minus last_message_at and updated_at) on every touch.
--   It now compares the same columns as a row: the same meaning, without building two JSON
--   documents. A pgTAP test (25_session_touch) fails when chat_sessions gains a column this
--   condition does not list, so a new column cannot escape the audit.
--
-- One fix: two sends of one message (same sender, same client_message_id) in one group
-- both came back as inserted, and the message got two audit rows and two Realtime rows.
-- The second now comes back as a retry (inserted = false, the first one's row), as a
-- retry in a later group always did. Otherwise nothing a caller sees changes: the same
-- rows, the same audit and Realtime rows, the same errors.

-- ---------------------------------------------------------------- the group's side rows
drop function chat_private.record_group_messages(public.chat_messages[], text[]);

create function chat_private.record_group_messages(
  messages public.chat_messages[], claims text[]
)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  _via jsonb := jsonb_build_object(
    'via', coalesce(nullif(current_setting('application_name', true), ''), 'unknown')
  );
begin
  if coalesce(cardinality(messages), 0) = 0 then
    return 0;
  end if;
  -- As append_audit: nothing is recorded for the rows of an erasure in progress.
  if not (
    coalesce(current_setting('chat.erasure', true), '') <> ''
    and chat_private.erasure_in_progress()
  ) then
    insert into public.chat_audit_logs (actor_id, actor_role, action, session_id, message_id, details)
    select
      a.actor_id,
      a.actor_role,
      'message.created',
      (messages[i]).session_id,
      (messages[i]).id,
      chat_private.message_created_details(messages[i]) || _via
    from generate_subscripts(messages, 1) as i
    cross join lateral chat_private.audit_actor_of(
      coalesce(nullif(claims[i], '')::jsonb, '{}'::jsonb), 'authenticated'
    ) as a
    order by i;
  end if;
  if to_regclass('realtime.messages') is not null
    and coalesce((select r.broadcast from chat_private.realtime_settings as r where r.id), false) then
    insert into realtime.messages (payload, event, topic, private, extension)
    select
      chat_private.realtime_message_payload(
        messages[i],
        (
          select chat_private.display_name(u.email, u.raw_user_meta_data)
          from auth.users as u
          where u.id = (messages[i]).sender_id
        )
      ),
      'new_message',
      'chat:' || (messages[i]).session_id,
      true,
      'broadcast'
    from generate_subscripts(messages, 1) as i
    order by i;
  end if;
  return cardinality(messages);
end
$$;

revoke all on function chat_private.record_group_messages(public.chat_messages[], text[]) from public;

comment on function chat_private.record_group_messages(public.chat_messages[], text[]) is
'The audit and Realtime rows of the messages a relay group stored; returns how many messages it was given.';

-- ---------------------------------------------------------------- one message, as its sender
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
  _set text;  -- set_config's result, unused: assigned, the call runs without a query
begin
  -- @plpgsql_check_options: extra_warnings = off
  _set := set_config('request.jwt.claims', claims, true);
  _set := set_config('role', 'authenticated', true);
  _row := public.send_chat_message(
    session_id => session_id,
    content => content,
    type => type,
    reply_to_message_id => reply_to_message_id,
    metadata => metadata,
    client_message_id => client_message_id
  );
  _set := set_config('role', 'none', true);
  return _row;
end
$$;

-- ---------------------------------------------------------------- the group
create or replace function chat_private.send_chat_messages(
  claims text[],
  session_ids uuid[],
  contents text[],
  types text[],
  reply_to_ids uuid[],
  metadatas jsonb[],
  client_message_ids text[],
  isolate boolean default false
)
returns table (
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
set search_path = ''
as $$
declare
  _n integer := coalesce(cardinality(session_ids), 0);
  _row public.chat_messages;
  _xid xid8;
  _sessions uuid [] := '{}'::uuid [];
  _times timestamptz [] := '{}'::timestamptz [];
  _stored public.chat_messages [] := '{}'::public.chat_messages [];
  _stored_claims text [] := '{}'::text [];
  _ids uuid [] := '{}'::uuid [];
  _touch record;
  _set text;  -- set_config's result, unused: assigned, the call runs without a query
  _recorded integer;
  _at timestamptz;
  _last timestamptz;
begin
  -- @plpgsql_check_options: extra_warnings = off
  _set := set_config('chat.relay_write', 'on', true);
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
    -- Stored by this group, and not already: a retry in the same group (the same sender
    -- and client_message_id) gets the row its first attempt stored, as inserted = false,
    -- so the message is recorded and broadcast once.
    inserted := _row.xact_id is not distinct from _xid and _row.id is not null
      and not coalesce(_row.id = any (_ids), false);
    if inserted then
      _ids := _ids || _row.id;
      _sessions := _sessions || _row.session_id;
      _times := _times || _row.created_at;
      _stored := _stored || _row;
      _stored_claims := _stored_claims || claims[_i];
    end if;
    return next;
  end loop;
  _set := set_config('request.jwt.claims', '', true);
  -- The audit and Realtime rows the row triggers leave to the group.
  _recorded := chat_private.record_group_messages(_stored, _stored_claims);
  -- Each session once, in id order (no lock-order deadlock between two relays' groups);
  -- a group whose messages all went to one session has nothing to sort.
  _set := set_config('chat.session_touch', 'on', true);
  if cardinality(_sessions) > 0 and _sessions[1] = all (_sessions) then
    foreach _at in array _times loop
      _last := greatest(_last, _at);
    end loop;
    update public.chat_sessions as s
    set last_message_at = greatest(coalesce(s.last_message_at, _last), _last)
    where s.id = _sessions[1];
  elsif cardinality(_sessions) > 1 then
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
  end if;
  _set := set_config('chat.session_touch', 'off', true);
  _set := set_config('chat.relay_write', 'off', true);
end
$$;

-- ---------------------------------------------------------------- the session audit trigger
drop trigger chat_sessions_audit_update on public.chat_sessions;

create trigger chat_sessions_audit_update
after update on public.chat_sessions
for each row
when (
  current_setting('chat.session_touch', true) is distinct from 'on'
  or (
    old.id, old.participants, old.type, old.booking_id, old.status, old.title,
    old.created_by, old.created_at, old.closed_at, old.frozen_at
  ) is distinct from (
    new.id, new.participants, new.type, new.booking_id, new.status, new.title,
    new.created_by, new.created_at, new.closed_at, new.frozen_at
  )
)
execute function chat_private.audit_session_update();
