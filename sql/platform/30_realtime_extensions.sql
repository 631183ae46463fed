-- Local stand-in for hosted Supabase: the realtime publication and schema extensions.

do $$
begin
  if not exists (select 1 from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
end
$$;

create schema if not exists extensions;
grant usage on schema extensions to anon, authenticated, service_role;

-- pgTAP lives in schema extensions, where `supabase test db` expects it. It is only
-- needed by the tests; a development database without the package does without it.
do $$
begin
  if exists (select 1 from pg_available_extensions where name = 'pgtap') then
    create extension if not exists pgtap with schema extensions;
  end if;
end
$$;
