-- admin_chat_monitoring's description (shown by PostgREST and the Supabase dashboard) named
-- a document that is not part of the project; it now says what the function returns.
comment on function public.admin_chat_monitoring() is
'Admins only: message throughput, session durations, uploads, error rate, user activity by event type in the last hour and sessions created per day and type over seven days; audited.';
