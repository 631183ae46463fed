-- A message written outside the relay (supabase-js, PostgREST, plain SQL) moves its
-- session's last_message_at from a trigger, once per message. That nested update ran the
-- session's whole audit diff (both rows to jsonb, compared key by key) only to find
-- nothing to record, and the participants CHECK's helper ran a query of its own: together
-- about half of such an insert's database time (measured with track_functions).

-- The audit trigger returns at once for that touch: an update made from inside another
-- trigger (pg_trigger_depth() > 1) while chat.session_touch is on can only be
-- chat_private.touch_session_on_message's, which sets last_message_at and nothing else
-- (the guard stamps updated_at), both of which the audit ignores for a touch. Any other
-- update (a user's, an RPC's, the relay's once-per-group touch) is diffed as before.
create or replace function chat_private.audit_session_update() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  _ignored text [] := array['updated_at'];
  _changes jsonb;
  _action text := 'session.updated';
begin
  if current_setting('chat.session_touch', true) = 'on' then
    if pg_trigger_depth() > 1 then
      return null;
    end if;
    _ignored := _ignored || 'last_message_at'::text;
  end if;
  _changes := chat_private.changed_columns(to_jsonb(old), to_jsonb(new), _ignored);
  if _changes = '{}'::jsonb then
    return null;
  end if;
  if old.status = 'active' and new.status = 'closed' then
    _action := 'session.closed';
  elsif old.status = 'closed' and new.status = 'active' then
    _action := 'session.reopened';
  end if;
  perform chat_private.append_audit(_action, new.id, null, _changes);
  return null;
end
$$;

-- The participants CHECK runs on every update of a session row, the touch included. Its
-- helper compares the few elements directly instead of running a query (same answers:
-- an empty array is distinct, any NULL element is not; large or multi-dimensional arrays
-- still take the query).
create or replace function chat_private.has_distinct_elements(items uuid[]) returns boolean
language plpgsql
immutable
strict
set search_path = ''
as $$
declare
  _lo integer := array_lower(items, 1);
  _hi integer := array_upper(items, 1);
begin
  if _lo is null then
    return true;  -- no elements
  end if;
  if array_ndims(items) > 1 or _hi - _lo >= 32 then
    return (select count(*) = count(distinct item) from unnest(items) as item);
  end if;
  for i in _lo .. _hi loop
    if items[i] is null then
      return false;
    end if;
    for j in i + 1 .. _hi loop
      if items[i] = items[j] then
        return false;
      end if;
    end loop;
  end loop;
  return true;
end
$$;
