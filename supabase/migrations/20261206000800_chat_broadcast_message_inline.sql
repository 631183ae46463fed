-- The new_message broadcast on every inserted message, without helper calls.
--
-- A call to a function with its own search_path (chat_private.display_name,
-- chat_private.broadcast) costs a configuration save and restore and, for a SQL function,
-- planning its statement again on every row: measured in a loop of single-row inserts,
-- the broadcast trigger added about 145 us per message, and about 40 us with the name
-- computed and the row inserted here. The payload, the topic and the switch are unchanged.
-- The trigger exists only where schema realtime does, so the direct insert into
-- realtime.messages is bound only there (plpgsql binds tables when the function runs).

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
    select left(coalesce(
      nullif(btrim(u.raw_user_meta_data ->> 'full_name'), ''),
      nullif(btrim(u.raw_user_meta_data ->> 'name'), ''),
      nullif(split_part(u.email, '@', 1), ''),
      'user'), 100) into _name
    from auth.users as u where u.id = new.sender_id;
  end if;
  insert into realtime.messages (payload, event, topic, private, extension)
  values (
    jsonb_build_object(
      'id', new.id,
      'session_id', new.session_id,
      'sender_id', new.sender_id,
      'sender_name', case
        when new.type = 'system' then coalesce(_name, 'System')
        when new.sender_id is null then 'Deleted user'
        else coalesce(_name, 'user')
      end,
      'type', new.type,
      'content', new.content,
      'reply_to_message_id', new.reply_to_message_id,
      'metadata', new.metadata - 'url',
      'client_message_id', new.client_message_id,
      'created_at', to_char(new.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
      'seq', new.seq,
      'deleted', new.deleted_at is not null,
      'deleted_reason', new.deleted_reason,
      'edited_at', null
    ),
    'new_message',
    'chat:' || new.session_id, true, 'broadcast'
  );
  return null;
end
$$;
