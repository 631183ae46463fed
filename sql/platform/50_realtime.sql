-- Local stand-in for hosted Supabase: schema realtime, as far as our migrations use it
-- (Broadcast from the database to private channels). Taken from supabase/realtime,
-- lib/realtime/tenants/repo/migrations/: 20260420000000_squash_migrations.ex (the role,
-- realtime.topic(), realtime.send(), realtime.broadcast_changes(), the messages table
-- partitioned by day on inserted_at, its grants and RLS) and
-- 20260604120000_add_messages_default_partition.ex (the default partition). Realtime's own
-- janitor creates a partition a day and drops those older than 3 days; here the
-- partitions of the last 3 and next 3 days are made whenever this file is applied.
-- Idempotent; never pushed.

do $$
begin
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'supabase_realtime_admin') then
    create role supabase_realtime_admin with noinherit nologin noreplication;
  end if;
end
$$;
grant supabase_realtime_admin to postgres;

create schema if not exists realtime;

create or replace function realtime.topic() returns text
language sql
stable
as $$
  select nullif(current_setting('realtime.topic', true), '')::text;
$$;

create table if not exists realtime.messages (
  topic text not null,
  extension text not null,
  payload jsonb,
  event text,
  private boolean default false,
  updated_at timestamp without time zone default now() not null,
  inserted_at timestamp without time zone default now() not null,
  id uuid default gen_random_uuid() not null
) partition by range (inserted_at);

do $$
begin
  if not exists (
    select 1 from pg_catalog.pg_constraint
    where conname = 'messages_pkey' and connamespace = 'realtime'::regnamespace
  ) then
    alter table only realtime.messages add constraint messages_pkey primary key (id, inserted_at);
  end if;
end
$$;

create index if not exists messages_inserted_at_topic_index
on only realtime.messages using btree (inserted_at desc, topic)
where ((extension = 'broadcast'::text) and (private is true));

create table if not exists realtime.messages_default partition of realtime.messages default;

-- A partition a day, as Realtime's janitor makes them (messages_YYYY_MM_DD).
do $$
declare
  _day date;
begin
  for _day in select generate_series(current_date - 3, current_date + 3, interval '1 day')::date loop
    if not exists (
      select 1 from pg_catalog.pg_class
      where relname = 'messages_' || to_char(_day, 'YYYY_MM_DD')
        and relnamespace = 'realtime'::regnamespace
    ) then
      execute format(
        'create table realtime.%I partition of realtime.messages for values from (%L) to (%L)',
        'messages_' || to_char(_day, 'YYYY_MM_DD'), _day, _day + 1
      );
    end if;
  end loop;
end
$$;

create or replace function realtime.send(
  payload jsonb, event text, topic text, private boolean default true
) returns void
language plpgsql
as $$
declare
  generated_id uuid;
  final_payload jsonb;
begin
  begin
    generated_id := gen_random_uuid();
    if payload ? 'id' then
      final_payload := payload;
    else
      final_payload := jsonb_set(payload, '{id}', to_jsonb(generated_id));
    end if;
    execute format('SET LOCAL realtime.topic TO %L', topic);
    insert into realtime.messages (id, payload, event, topic, private, extension)
    values (generated_id, final_payload, event, topic, private, 'broadcast');
  exception
    when others then
      raise warning 'ErrorSendingBroadcastMessage: %', sqlerrm;
  end;
end;
$$;

create or replace function realtime.broadcast_changes(
  topic_name text, event_name text, operation text, table_name text, table_schema text,
  new record, old record, level text default 'ROW'::text
) returns void
language plpgsql
as $$
declare
  row_data jsonb := '{}'::jsonb;
begin
  if level = 'STATEMENT' then
    raise exception 'function can only be triggered for each row, not for each statement';
  end if;
  if operation = 'INSERT' or operation = 'UPDATE' or operation = 'DELETE' then
    row_data := jsonb_build_object(
      'old_record', old, 'record', new, 'operation', operation, 'table', table_name,
      'schema', table_schema
    );
    perform realtime.send(row_data, event_name, topic_name);
  else
    raise exception 'Unexpected operation type: %', operation;
  end if;
exception
  when others then
    raise exception 'Failed to process the row: %', sqlerrm;
end;
$$;

alter table realtime.messages owner to supabase_realtime_admin;
alter function realtime.topic() owner to supabase_realtime_admin;

grant usage on schema realtime to postgres, anon, authenticated, service_role, supabase_realtime_admin;
grant create on schema realtime to supabase_realtime_admin;
grant all on all tables in schema realtime to supabase_realtime_admin;
grant all on all functions in schema realtime to supabase_realtime_admin;
grant select, insert, update on realtime.messages to postgres, anon, authenticated, service_role;
grant delete, truncate, references, trigger on realtime.messages to postgres;

alter table realtime.messages enable row level security;
