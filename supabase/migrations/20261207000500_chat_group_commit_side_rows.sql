-- The relay's group commit writes its messages' audit rows and Realtime rows once per
-- group, in one statement each, instead of one statement per message from row triggers.
--
-- Every message still gets exactly the rows it got before, with the same content: the
-- audit row `message.created` (its actor taken from the claims the message was sent
-- with) and, where Supabase Realtime broadcasts, the `new_message` row on its session's
-- topic. What changes is the cost: a row trigger ran an INSERT per message, and each such
-- statement started an executor, read the table's CHECK constraints back from their
-- stored form and prepared them, and routed the row to a partition of realtime.messages.
-- In a group of ten messages that is twenty statements; now it is two.
--
-- Which writes take this path: those made inside chat_private.send_chat_messages (the
-- only place that sets chat.relay_write, as the NOTIFY and session-touch triggers already
-- rely on). Every other insert (supabase-js, PostgREST, SQL) is audited and broadcast by
-- the row triggers as before. Deletes are always audited by their row trigger.
--
-- The details of a `message.created` row, the actor of a set of claims and the Realtime
-- payload of a message are each defined once, in the functions below, and used by both
-- the row triggers and the group.

-- ---------------------------------------------------------------- defined once
-- The audit details of a stored message.
create function chat_private.message_created_details(m public.chat_messages)
returns jsonb
language sql
immutable
set search_path = ''
as $$
  select jsonb_strip_nulls(jsonb_build_object(
    'type', m.type, 'sender_id', m.sender_id, 'seq', m.seq,
    'content_length', char_length(m.content),
    'reply_to_message_id', m.reply_to_message_id,
    'client_message_id', m.client_message_id,
    'storage_path', m.metadata ->> 'storage_path',
    'size_bytes', m.metadata -> 'size_bytes'
  ))
$$;

-- Who acted, by a set of JWT claims: the service role; a user (their id and app role,
-- app_metadata.role, default client); another role named by the claims; else
-- `fallback_role` (the database role the statement ran as).
create function chat_private.audit_actor_of(
  claims jsonb, fallback_role text, out actor_id uuid, out actor_role text
)
returns record
language plpgsql
immutable
set search_path = ''
as $$
declare
  _sub text := claims ->> 'sub';
begin
  if claims ->> 'role' = 'service_role' then
    actor_role := 'service_role';
  elsif _sub ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
    actor_id := _sub::uuid;
    actor_role := coalesce(nullif(claims -> 'app_metadata' ->> 'role', ''), 'client');
  elsif nullif(claims ->> 'role', '') is not null then
    actor_role := claims ->> 'role';
  else
    actor_role := fallback_role;
  end if;
end
$$;

-- The actor of the current statement, by the request's claims.
create or replace function chat_private.audit_actor(out actor_id uuid, out actor_role text)
returns record
language sql
stable
set search_path = ''
as $$
  select a.actor_id, a.actor_role
  from chat_private.audit_actor_of(
    auth.jwt(), coalesce(nullif(current_setting('role', true), 'none'), session_user::text)
  ) as a
$$;

-- The `new_message` payload of a stored message, as the relay's socket event carries it.
create function chat_private.realtime_message_payload(m public.chat_messages, sender_name text)
returns jsonb
language sql
immutable
set search_path = ''
as $$
  select jsonb_build_object(
    'id', m.id,
    'session_id', m.session_id,
    'sender_id', m.sender_id,
    'sender_name', case
      when m.type = 'system' then coalesce(sender_name, 'System')
      when m.sender_id is null then 'Deleted user'
      else coalesce(sender_name, 'user')
    end,
    'type', m.type,
    'content', m.content,
    'reply_to_message_id', m.reply_to_message_id,
    'metadata', m.metadata - 'url',
    'client_message_id', m.client_message_id,
    'created_at', to_char(m.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'seq', m.seq,
    'deleted', m.deleted_at is not null,
    'deleted_reason', m.deleted_reason,
    'edited_at', null
  )
$$;

-- Called by the security definer triggers and the group (as their owner) only.
revoke all on function chat_private.message_created_details(public.chat_messages) from public;
revoke all on function chat_private.audit_actor_of(jsonb, text) from public;
revoke all on function chat_private.realtime_message_payload(public.chat_messages, text) from public;

-- ---------------------------------------------------------------- the row triggers
create or replace function chat_private.audit_message_change()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    perform chat_private.append_audit(
      'message.created', new.session_id, new.id, chat_private.message_created_details(new)
    );
  elsif tg_op = 'UPDATE' then
    perform chat_private.append_audit(
      'message.updated', new.session_id, new.id,
      jsonb_build_object(
        'type', new.type,
        'content_changed', old.content is distinct from new.content,
        'metadata_changed', old.metadata is distinct from new.metadata,
        'content_length', char_length(new.content)
      )
    );
  else
    perform chat_private.append_audit(
      'message.deleted', old.session_id, old.id,
      jsonb_build_object('type', old.type, 'sender_id', old.sender_id, 'seq', old.seq)
    );
  end if;
  return null;
end
$$;

create or replace function chat_private.broadcast_message()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  _name text;
begin
  if not coalesce((select r.broadcast from chat_private.realtime_settings as r where r.id), false) then
    return null;
  end if;
  if new.sender_id is not null then
    select chat_private.display_name(u.email, u.raw_user_meta_data) into _name
    from auth.users as u where u.id = new.sender_id;
  end if;
  insert into realtime.messages (payload, event, topic, private, extension)
  values (
    chat_private.realtime_message_payload(new, _name),
    'new_message', 'chat:' || new.session_id, true, 'broadcast'
  );
  return null;
end
$$;

drop trigger chat_messages_audit on public.chat_messages;

create trigger chat_messages_audit
after insert on public.chat_messages
for each row
when (current_setting('chat.relay_write', true) is distinct from 'on')
execute function chat_private.audit_message_change();

create trigger chat_messages_audit_delete
after delete on public.chat_messages
for each row execute function chat_private.audit_message_change();

do $$
begin
  if exists (
    select 1 from pg_trigger
    where tgname = 'chat_messages_broadcast' and tgrelid = 'public.chat_messages'::regclass
  ) then
    drop trigger chat_messages_broadcast on public.chat_messages;
    create trigger chat_messages_broadcast
    after insert on public.chat_messages
    for each row
    when (current_setting('chat.relay_write', true) is distinct from 'on')
    execute function chat_private.broadcast_message();
  end if;
end
$$;

-- ---------------------------------------------------------------- the group's rows
-- The audit and Realtime rows of the messages a group stored, in the group's order;
-- claims[i] is the JWT claims messages[i] was sent with. The rows come as they were
-- stored (each insert's RETURNING), so nothing is read back: each statement is a loop
-- over the array, whatever the planner thinks of the tables' sizes.
create function chat_private.record_group_messages(
  messages public.chat_messages[], claims text[]
)
returns void
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
    return;
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
end
$$;

revoke all on function chat_private.record_group_messages(public.chat_messages[], text[]) from public;

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
      _stored := _stored || _row;
      _stored_claims := _stored_claims || claims[_i];
    end if;
    return next;
  end loop;
  perform set_config('request.jwt.claims', '', true);
  -- The audit and Realtime rows the row triggers leave to the group.
  perform chat_private.record_group_messages(_stored, _stored_claims);
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
