-- Delivery cursors are audited like every other chat table (every column change, whoever
-- makes it): a row when a cursor is first set or moves, naming the changed columns.

create or replace function chat_private.audit_delivery_state_change() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  _changes jsonb := '{}'::jsonb;
begin
  if tg_op = 'UPDATE' then
    _changes := chat_private.changed_columns(to_jsonb(old), to_jsonb(new), array['updated_at']);
    if _changes = '{}'::jsonb then
      return null;
    end if;
  end if;
  perform chat_private.append_audit(
    case when tg_op = 'UPDATE' and old.last_delivered_seq is not distinct from new.last_delivered_seq
      then 'delivery_state.updated' else 'delivery_state.advanced' end,
    new.session_id, new.last_delivered_message_id,
    _changes || jsonb_build_object('user_id', new.user_id, 'last_delivered_seq', new.last_delivered_seq)
  );
  return null;
end
$$;

create trigger chat_delivery_state_audit
after insert or update on public.chat_delivery_state
for each row execute function chat_private.audit_delivery_state_change();

revoke all on function chat_private.audit_delivery_state_change() from public;
