-- Delivery receipts: a per-user delivery cursor beside the read cursor. A client says what
-- reached a device (messages_delivered); the cursor follows the read cursor's rules: it
-- names a message of its session, takes that message's position, never moves backwards,
-- and only participants read it (RLS). Changes are audited (..._chat_audit_delivery.sql);
-- delivery changes no unread count.

-- ---------------------------------------------------------------- table
create table public.chat_delivery_state (
  session_id uuid not null references public.chat_sessions (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  last_delivered_message_id uuid not null,
  last_delivered_at timestamptz not null,
  last_delivered_seq bigint not null,
  updated_at timestamptz not null default now(),
  constraint chat_delivery_state_pkey primary key (session_id, user_id),
  constraint chat_delivery_state_message_fkey foreign key (last_delivered_message_id, session_id)
  references public.chat_messages (id, session_id) on delete cascade
);

comment on table public.chat_delivery_state is
'Per user and session delivery cursor: everything up to (last_delivered_at, last_delivered_seq) reached a device of the user.';
comment on column public.chat_delivery_state.last_delivered_at is
'created_at of last_delivered_message_id, copied so a message''s status is a tuple comparison.';

create index chat_delivery_state_user_id on public.chat_delivery_state (user_id);
create index chat_delivery_state_message on public.chat_delivery_state (
  last_delivered_message_id, session_id
);

-- ---------------------------------------------------------------- grants
revoke all on public.chat_delivery_state from anon, authenticated, service_role, public;
grant select, insert on public.chat_delivery_state to authenticated;
grant update (last_delivered_message_id, last_delivered_at, last_delivered_seq, updated_at)
on public.chat_delivery_state to authenticated;
grant select, insert, update, delete on public.chat_delivery_state to service_role;

-- ---------------------------------------------------------------- triggers
-- The cursor's position is its message's, and it never moves backwards (direct writes
-- through PostgREST included).
create or replace function chat_private.guard_delivery_state() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  _at timestamptz;
  _seq bigint;
begin
  select m.created_at, m.seq into _at, _seq from public.chat_messages as m
  where m.id = new.last_delivered_message_id and m.session_id = new.session_id;
  if not found then
    return new;  -- not a message of this session: the foreign key refuses it
  end if;
  new.last_delivered_at := _at;
  new.last_delivered_seq := _seq;
  new.updated_at := now();
  if tg_op = 'UPDATE' and (_at, _seq) < (old.last_delivered_at, old.last_delivered_seq) then
    raise exception 'a delivery cursor cannot move backwards' using errcode = '22023';
  end if;
  return new;
end
$$;

create trigger chat_delivery_state_guard
before insert or update on public.chat_delivery_state
for each row execute function chat_private.guard_delivery_state();

-- The relay reads this notification (kind "delivered") and tells the session's room.
create or replace function chat_private.notify_delivery_state() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform pg_notify(
    'chat_events',
    json_build_object(
      'kind', 'delivered',
      'session_id', new.session_id,
      'user_id', new.user_id,
      'up_to_message_id', new.last_delivered_message_id
    )::text
  );
  return null;
end
$$;

create trigger chat_delivery_state_notify
after insert or update on public.chat_delivery_state
for each row execute function chat_private.notify_delivery_state();

revoke all on function chat_private.guard_delivery_state() from public;
revoke all on function chat_private.notify_delivery_state() from public;

-- ---------------------------------------------------------------- row-level security
alter table public.chat_delivery_state enable row level security;

create policy "Delivery state is readable by session participants"
on public.chat_delivery_state for select
to authenticated
using (session_id in (select chat_private.my_session_ids()));

create policy "Participants can create their own delivery state"
on public.chat_delivery_state for insert
to authenticated
with check (
  user_id = (select auth.uid())
  and session_id in (select chat_private.my_session_ids())
);

create policy "Participants can advance their own delivery state"
on public.chat_delivery_state for update
to authenticated
using (user_id = (select auth.uid()))
with check (
  user_id = (select auth.uid())
  and session_id in (select chat_private.my_session_ids())
);

-- ---------------------------------------------------------------- functions
-- Advance the caller's delivery cursor to a message (default: the newest). Returns true
-- when it moved; an older message than the cursor is not an error (devices report late).
create or replace function public.mark_chat_messages_delivered(
  session_id uuid,
  up_to_message_id uuid default null
) returns boolean
language plpgsql
security invoker
set search_path = ''
as $$
#variable_conflict use_variable
declare
  _uid uuid := auth.uid();
  _target public.chat_messages;
  _moved integer;
begin
  if _uid is null then
    raise exception 'not authenticated' using errcode = '28000';
  end if;
  if not exists (
    select 1 from public.chat_sessions as s
    where s.id = session_id and s.participants @> array[_uid]
  ) then
    raise exception 'chat session % not found', session_id using errcode = 'P0002';
  end if;

  if up_to_message_id is null then
    select m.* into _target from public.chat_messages as m
    where m.session_id = session_id
    order by m.created_at desc, m.seq desc
    limit 1;
    if not found then
      return false;
    end if;
  else
    select m.* into _target from public.chat_messages as m
    where m.id = up_to_message_id and m.session_id = session_id;
    if not found then
      raise exception 'up_to_message_id is not a message of this session'
        using errcode = '22023';
    end if;
  end if;

  insert into public.chat_delivery_state as d (
    session_id, user_id, last_delivered_message_id, last_delivered_at, last_delivered_seq,
    updated_at
  )
  values (session_id, _uid, _target.id, _target.created_at, _target.seq, now())
  on conflict on constraint chat_delivery_state_pkey do update
    set last_delivered_message_id = excluded.last_delivered_message_id,
        last_delivered_at = excluded.last_delivered_at,
        last_delivered_seq = excluded.last_delivered_seq,
        updated_at = excluded.updated_at
    where (d.last_delivered_at, d.last_delivered_seq)
      < (excluded.last_delivered_at, excluded.last_delivered_seq);
  get diagnostics _moved = row_count;
  return _moved > 0;
end
$$;

comment on function public.mark_chat_messages_delivered(uuid, uuid) is
'Advance the caller''s delivery cursor to a message (default: the newest); true when it moved.';

-- Every participant's cursors in one session, so a client can show per message "delivered"
-- (every other participant's delivery or read cursor is at or past it) and "read", for a
-- session of any size. A read message counts as delivered.
create or replace function public.get_chat_receipts(session_id uuid)
returns table (
  user_id uuid,
  delivered_message_id uuid,
  delivered_at timestamptz,
  delivered_seq bigint,
  read_message_id uuid,
  read_at timestamptz,
  read_seq bigint
)
language plpgsql
stable
security invoker
set search_path = ''
as $$
#variable_conflict use_variable
declare
  _uid uuid := auth.uid();
  _participants uuid[];
begin
  if _uid is null then
    raise exception 'not authenticated' using errcode = '28000';
  end if;
  select s.participants into _participants from public.chat_sessions as s
  where s.id = session_id and s.participants @> array[_uid];
  if not found then
    raise exception 'chat session % not found', session_id using errcode = 'P0002';
  end if;
  return query
  select
    p.user_id,
    case
      when r.last_read_message_id is not null
        and (d.last_delivered_message_id is null
          or (r.last_read_at, r.last_read_seq) > (d.last_delivered_at, d.last_delivered_seq))
        then r.last_read_message_id
      else d.last_delivered_message_id
    end,
    case
      when r.last_read_message_id is not null
        and (d.last_delivered_message_id is null
          or (r.last_read_at, r.last_read_seq) > (d.last_delivered_at, d.last_delivered_seq))
        then r.last_read_at
      else d.last_delivered_at
    end,
    case
      when r.last_read_message_id is not null
        and (d.last_delivered_message_id is null
          or (r.last_read_at, r.last_read_seq) > (d.last_delivered_at, d.last_delivered_seq))
        then r.last_read_seq
      else d.last_delivered_seq
    end,
    r.last_read_message_id,
    r.last_read_at,
    r.last_read_seq
  from unnest(_participants) as p (user_id)
  left join public.chat_delivery_state as d
    on d.session_id = session_id and d.user_id = p.user_id
  left join public.chat_read_state as r
    on r.session_id = session_id and r.user_id = p.user_id
  order by p.user_id;
end
$$;

comment on function public.get_chat_receipts(uuid) is
'Each participant''s delivery cursor (read counts as delivered) and read cursor in a session of the caller.';

revoke all on function public.mark_chat_messages_delivered(uuid, uuid) from public, anon;
revoke all on function public.get_chat_receipts(uuid) from public, anon;
grant execute on function public.mark_chat_messages_delivered(uuid, uuid) to authenticated;
grant execute on function public.get_chat_receipts(uuid) to authenticated, service_role;

alter publication supabase_realtime add table public.chat_delivery_state;
