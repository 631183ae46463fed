-- pgTAP, in schema extensions where `supabase test db` expects it: test databases only
-- (scripts/test installs it after the migrations; scripts/dev databases do without it).
create schema if not exists extensions;
create extension if not exists pgtap with schema extensions;
