-- Exact catch-up for the relay's changefeed. seq and created_at are taken before commit, so
-- a slow transaction can commit behind later ones: neither says what committed after a given
-- moment. The id of the writing transaction, compared with a snapshot taken at that moment
-- (pg_visible_in_snapshot), does.

alter table public.chat_messages
add column xact_id xid8 not null default pg_current_xact_id();

comment on column public.chat_messages.xact_id is
'Transaction that wrote the row. The changefeed replays rows not visible in its last snapshot.';

-- The catch-up query: xact_id >= pg_snapshot_xmin(snapshot) and not visible in it.
create index chat_messages_xact_id on public.chat_messages (xact_id);

-- Through the API roles, created_at and xact_id are the server's: a client can neither
-- backdate a message nor hide it from catch-up.
create or replace function chat_private.stamp_message_insert() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.xact_id := pg_current_xact_id();
  if coalesce(auth.role(), '') in ('authenticated', 'anon') then
    new.created_at := now();
  end if;
  return new;
end
$$;
