-- Display names of chat users, for sender_name and user_name in the API and the relay.
-- auth.users is not readable by the API roles, so a security definer function returns the
-- names of the given users that share a session with the caller (or all of them for the
-- service role), and nothing else: no email addresses, no metadata.

create or replace function chat_private.display_name(
  email text,
  user_metadata jsonb
) returns text
language sql
immutable
set search_path = ''
as $$
  select left(coalesce(
    nullif(btrim(user_metadata ->> 'full_name'), ''),
    nullif(btrim(user_metadata ->> 'name'), ''),
    nullif(split_part(email, '@', 1), ''),
    'user'
  ), 100)
$$;

create or replace function public.chat_user_names(user_ids uuid[])
returns table (user_id uuid, name text)
language sql
stable
security definer
set search_path = ''
as $$
  select u.id as user_id, chat_private.display_name(u.email, u.raw_user_meta_data) as name
  from auth.users as u
  where u.id = any(user_ids)
    and (
      (select auth.role()) = 'service_role'
      or u.id = (select auth.uid())
      or exists (
        select 1 from public.chat_sessions as s
        where s.participants @> array[(select auth.uid())]
          and s.participants @> array[u.id]
      )
    )
$$;

comment on function public.chat_user_names(uuid[]) is
'Display names (user_metadata.full_name, name, else the email''s local part) of users who share a session with the caller.';

revoke all on function chat_private.display_name(text, jsonb) from public;
grant execute on function chat_private.display_name(text, jsonb) to authenticated, service_role;
revoke all on function public.chat_user_names(uuid[]) from public, anon;
grant execute on function public.chat_user_names(uuid[]) to authenticated, service_role;
