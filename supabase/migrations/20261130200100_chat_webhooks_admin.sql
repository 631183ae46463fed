-- Admin access to the webhook outbox: list deliveries and replay one. Admins only
-- (app_metadata.role admin or super_admin); every call writes an audit row in the same
-- transaction, like the other admin functions.

-- ---------------------------------------------------------------- helpers
create or replace function chat_private.webhook_delivery_json(
  delivery chat_private.webhook_outbox
) returns jsonb
language sql
stable
set search_path = ''
as $$
  select jsonb_build_object(
    'id', delivery.id,
    'webhook_id', 'msg_' || replace(delivery.id::text, '-', ''),
    'event_type', delivery.event_type,
    'session_id', delivery.session_id,
    'user_id', delivery.user_id,
    'status', delivery.status,
    'attempts', delivery.attempts,
    'next_attempt_at', case when delivery.status = 'pending' then delivery.next_attempt_at end,
    'created_at', delivery.created_at,
    'last_attempt_at', delivery.last_attempt_at,
    'last_status', delivery.last_status,
    'last_error', delivery.last_error,
    'delivered_at', delivery.delivered_at,
    'dead_reason', delivery.dead_reason,
    'replays', delivery.replays,
    'payload', delivery.payload
  )
$$;

create or replace function chat_private.list_webhook_deliveries(
  max_rows integer,
  skip_rows integer,
  target_status text,
  target_event_type text
) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  _rows jsonb;
  _total bigint;
begin
  perform chat_private.require_admin('list webhook deliveries');
  if max_rows is null or max_rows not between 1 and 200 then
    raise exception 'limit must be between 1 and 200' using errcode = '22023';
  end if;
  if skip_rows is null or skip_rows < 0 then
    raise exception 'offset must not be negative' using errcode = '22023';
  end if;
  if target_status is not null and target_status not in ('pending', 'delivered', 'dead') then
    raise exception 'status must be pending, delivered or dead' using errcode = '22023';
  end if;
  select count(*) into _total
  from chat_private.webhook_outbox as o
  where (target_status is null or o.status = target_status)
    and (target_event_type is null or o.event_type = target_event_type);
  select coalesce(jsonb_agg(chat_private.webhook_delivery_json(page) order by page.created_at desc, page.id), '[]'::jsonb)
  into _rows
  from (
    select o.*
    from chat_private.webhook_outbox as o
    where (target_status is null or o.status = target_status)
      and (target_event_type is null or o.event_type = target_event_type)
    order by o.created_at desc, o.id
    limit max_rows
    offset skip_rows
  ) as page;
  perform chat_private.append_audit(
    'admin.webhooks.read', null, null,
    jsonb_strip_nulls(jsonb_build_object(
      'limit', max_rows, 'offset', skip_rows, 'status', target_status,
      'event_type', target_event_type, 'returned', jsonb_array_length(_rows)
    ))
  );
  return jsonb_build_object('deliveries', _rows, 'total', _total);
end
$$;

-- Replaying puts a delivered or dead row back in the queue, due now, with a new retry
-- window and the same webhook-id (receivers that already processed it dedupe).
create or replace function chat_private.replay_webhook_delivery(delivery_id uuid) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  _row chat_private.webhook_outbox;
  _previous text;
begin
  perform chat_private.require_admin('replay webhook deliveries');
  select o.status into _previous
  from chat_private.webhook_outbox as o
  where o.id = delivery_id
  for update;
  if not found then
    raise exception 'webhook delivery % not found', delivery_id using errcode = 'P0002';
  end if;
  if _previous = 'pending' then
    raise exception 'webhook delivery % is already pending', delivery_id using errcode = '55000';
  end if;
  update chat_private.webhook_outbox as o
  set status = 'pending', dead_reason = null, delivered_at = null, next_attempt_at = now(),
    retry_since = now(), replays = o.replays + 1
  where o.id = delivery_id
  returning o.* into _row;
  perform chat_private.append_audit(
    'admin.webhooks.replay', _row.session_id, null,
    jsonb_build_object(
      'delivery_id', delivery_id, 'event_type', _row.event_type, 'previous_status', _previous
    )
  );
  return chat_private.webhook_delivery_json(_row);
end
$$;

revoke all on function chat_private.webhook_delivery_json(chat_private.webhook_outbox) from public;
revoke all on function chat_private.list_webhook_deliveries(integer, integer, text, text) from public;
revoke all on function chat_private.replay_webhook_delivery(uuid) from public;

grant execute on function chat_private.list_webhook_deliveries(integer, integer, text, text)
to authenticated;
grant execute on function chat_private.replay_webhook_delivery(uuid) to authenticated;

-- ---------------------------------------------------------------- public functions
-- Security invoker wrappers, callable through PostgREST (/rest/v1/rpc/...) by admins; the
-- role check and the audit row are in the chat_private functions they call.
create or replace function public.admin_chat_webhook_deliveries(
  max_rows integer default 50,
  skip_rows integer default 0,
  status text default null,
  event_type text default null
) returns jsonb
language sql
security invoker
set search_path = ''
as $$
  select chat_private.list_webhook_deliveries(
    admin_chat_webhook_deliveries.max_rows,
    admin_chat_webhook_deliveries.skip_rows,
    admin_chat_webhook_deliveries.status,
    admin_chat_webhook_deliveries.event_type
  )
$$;

comment on function public.admin_chat_webhook_deliveries(integer, integer, text, text) is
'Admins only: webhook deliveries newest first, filtered by status and event type, with the total; audited.';

create or replace function public.admin_replay_chat_webhook(delivery_id uuid) returns jsonb
language sql
security invoker
set search_path = ''
as $$
  select chat_private.replay_webhook_delivery(admin_replay_chat_webhook.delivery_id)
$$;

comment on function public.admin_replay_chat_webhook(uuid) is
'Admins only: put a delivered or dead webhook back in the queue (same webhook-id); audited.';

revoke all on function public.admin_chat_webhook_deliveries(integer, integer, text, text)
from public, anon;
revoke all on function public.admin_replay_chat_webhook(uuid) from public, anon;

grant execute on function public.admin_chat_webhook_deliveries(integer, integer, text, text)
to authenticated;
grant execute on function public.admin_replay_chat_webhook(uuid) to authenticated;
