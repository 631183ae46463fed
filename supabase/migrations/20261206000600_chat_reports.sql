-- Reports: a participant reports a message that hurts them (spam, harassment, contact
-- details shared to take the client off the platform, ...); admins work through the queue
-- and resolve each report by dismissing it, redacting the message or suspending its
-- sender. One open report per reporter and message. Every step is audited; the host
-- platform hears of each new report (webhook chat.message.reported, sent by the service).

-- ---------------------------------------------------------------- tables
create table chat_private.reports (
  id uuid primary key default gen_random_uuid(),
  session_id uuid not null references public.chat_sessions (id) on delete cascade,
  message_id uuid not null references public.chat_messages (id) on delete cascade,
  reporter_id uuid references auth.users (id) on delete cascade,
  category text not null,
  note text,
  status text not null default 'open',
  action text,
  resolution_note text,
  resolved_by uuid,
  resolved_at timestamptz,
  created_at timestamptz not null default now(),
  announced_at timestamptz,
  constraint reports_category_check check (
    category in ('spam', 'harassment', 'off_platform_contact', 'inappropriate', 'other')
  ),
  constraint reports_note_check check (char_length(note) <= 1000),
  constraint reports_status_check check (status in ('open', 'resolved')),
  constraint reports_action_check check (
    (status = 'resolved') = (action is not null) and action in ('dismiss', 'redact', 'suspend')
  ),
  constraint reports_resolution_note_check check (char_length(resolution_note) <= 1000)
);

comment on table chat_private.reports is
'Reports of messages by participants, and their resolution by admins. Participants reach it through report_chat_message only; admins through the audited queue functions.';
comment on column chat_private.reports.announced_at is
'When the service sent chat.message.reported to the host platform (or found webhooks off).';

create unique index reports_one_open on chat_private.reports (message_id, reporter_id)
where status = 'open';
create index reports_queue on chat_private.reports (status, created_at);
create index reports_unannounced on chat_private.reports (created_at) where announced_at is null;
create index reports_reporter_id on chat_private.reports (reporter_id);

revoke all on chat_private.reports from public, anon, authenticated, service_role;
alter table chat_private.reports enable row level security;

alter table chat_private.webhook_outbox drop constraint webhook_outbox_event_type_check;
alter table chat_private.webhook_outbox add constraint webhook_outbox_event_type_check check (
  event_type in (
    'chat.message.waiting', 'chat.session.created', 'chat.session.closed', 'chat.user.erased',
    'chat.message.reported'
  )
);

-- ---------------------------------------------------------------- helpers
create or replace function chat_private.report_json(entry chat_private.reports) returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'id', entry.id, 'session_id', entry.session_id, 'message_id', entry.message_id,
    'reporter_id', entry.reporter_id, 'category', entry.category, 'note', entry.note,
    'status', entry.status, 'action', entry.action, 'resolution_note', entry.resolution_note,
    'resolved_by', entry.resolved_by, 'resolved_at', entry.resolved_at,
    'created_at', entry.created_at
  )
$$;

create or replace function chat_private.report_message(
  target_message_id uuid, report_category text, report_note text
) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  _uid uuid := auth.uid();
  _message public.chat_messages;
  _row chat_private.reports;
begin
  if _uid is null then
    raise exception 'not authenticated' using errcode = '28000';
  end if;
  select m.* into _message from public.chat_messages as m
  inner join public.chat_sessions as s on m.session_id = s.id
  where m.id = target_message_id and s.participants @> array[_uid];
  if not found or _message.type = 'system' then
    raise exception 'message % not found', target_message_id using errcode = 'P0002';
  end if;
  if _message.sender_id = _uid then
    raise exception 'you cannot report your own message' using errcode = '22023';
  end if;
  begin
    insert into chat_private.reports (session_id, message_id, reporter_id, category, note)
    values (_message.session_id, _message.id, _uid, report_category, report_note)
    returning * into _row;
  exception when unique_violation then
    raise exception 'you have already reported this message' using errcode = '55000';
  end;
  perform chat_private.append_audit(
    'message.reported', _message.session_id, _message.id,
    jsonb_build_object('report_id', _row.id, 'category', report_category)
  );
  return chat_private.report_json(_row);
end
$$;

create or replace function chat_private.reports_as_admin(
  target_status text, max_rows integer, skip_rows integer
) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  _rows jsonb;
  _total bigint;
begin
  perform chat_private.require_admin('read the report queue');
  if target_status is not null and target_status not in ('open', 'resolved') then
    raise exception 'status must be open or resolved' using errcode = '22023';
  end if;
  if max_rows is null or max_rows not between 1 and 200 or skip_rows is null or skip_rows < 0 then
    raise exception 'limit must be between 1 and 200 and offset not negative' using errcode = '22023';
  end if;
  select count(*) into _total from chat_private.reports as r
  where target_status is null or r.status = target_status;
  select coalesce(jsonb_agg(
    chat_private.report_json(page) || jsonb_build_object(
      'message', jsonb_build_object(
        'sender_id', m.sender_id, 'type', m.type, 'content', m.content,
        'created_at', m.created_at, 'deleted', m.deleted_at is not null
      )
    ) order by page.created_at, page.id
  ), '[]'::jsonb)
  into _rows
  from (
    select r.* from chat_private.reports as r
    where target_status is null or r.status = target_status
    order by r.created_at, r.id
    limit max_rows offset skip_rows
  ) as page
  left join public.chat_messages as m on page.message_id = m.id;
  perform chat_private.append_audit(
    'admin.reports.read', null, null,
    jsonb_strip_nulls(jsonb_build_object('status', target_status, 'returned', jsonb_array_length(_rows)))
  );
  return jsonb_build_object('reports', _rows, 'total', _total);
end
$$;

create or replace function chat_private.resolve_report_as_admin(
  target_report_id uuid, resolution text, resolution_note text
) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  _row chat_private.reports;
  _message public.chat_messages;
begin
  perform chat_private.require_admin('resolve reports');
  if resolution is null or resolution not in ('dismiss', 'redact', 'suspend') then
    raise exception 'action must be dismiss, redact or suspend' using errcode = '22023';
  end if;
  select r.* into _row from chat_private.reports as r where r.id = target_report_id for update;
  if not found then
    raise exception 'report % not found', target_report_id using errcode = 'P0002';
  end if;
  if _row.status <> 'open' then
    raise exception 'this report is already resolved' using errcode = '55000';
  end if;
  select m.* into _message from public.chat_messages as m where m.id = _row.message_id;
  if resolution = 'redact' and _message.deleted_at is null then
    perform chat_private.redact_message_as_admin(
      _row.message_id, coalesce(nullif(btrim(resolution_note), ''), 'report: ' || _row.category)
    );
  elsif resolution = 'suspend' and _message.sender_id is not null then
    perform chat_private.suspend_as_admin(
      _message.sender_id, null, coalesce(nullif(btrim(resolution_note), ''), 'report: ' || _row.category)
    );
  end if;
  update chat_private.reports as r
  set status = 'resolved', action = resolution, resolution_note = resolve_report_as_admin.resolution_note,
    resolved_by = auth.uid(), resolved_at = now()
  where r.id = _row.id
  returning * into _row;
  perform chat_private.append_audit(
    'admin.report.resolved', _row.session_id, _row.message_id,
    jsonb_build_object('report_id', _row.id, 'action', resolution)
  );
  return chat_private.report_json(_row);
end
$$;

-- New reports, for the service to announce (the webhook), oldest first.
create or replace function chat_private.unannounced_reports(max_rows integer default 100)
returns setof chat_private.reports
language sql
stable
security definer
set search_path = ''
as $$
  select r.* from chat_private.reports as r
  where r.announced_at is null
  order by r.created_at
  limit max_rows
$$;

create or replace function chat_private.report_announced(target_report_id uuid) returns void
language sql
security definer
set search_path = ''
as $$
  update chat_private.reports as r set announced_at = now() where r.id = target_report_id
$$;

-- ---------------------------------------------------------------- public functions
create or replace function public.report_chat_message(
  message_id uuid, category text, note text default null
) returns jsonb
language sql
set search_path = ''
as $$
  select chat_private.report_message(
    report_chat_message.message_id, report_chat_message.category, report_chat_message.note
  )
$$;

comment on function public.report_chat_message(uuid, text, text) is
'A participant reports another participant''s message (spam, harassment, off_platform_contact, inappropriate, other); one open report per reporter and message.';

create or replace function public.admin_chat_reports(
  status text default 'open', max_rows integer default 50, skip_rows integer default 0
) returns jsonb
language sql
set search_path = ''
as $$
  select chat_private.reports_as_admin(
    admin_chat_reports.status, admin_chat_reports.max_rows, admin_chat_reports.skip_rows
  )
$$;

create or replace function public.admin_resolve_chat_report(
  report_id uuid, action text, note text default null
) returns jsonb
language sql
set search_path = ''
as $$
  select chat_private.resolve_report_as_admin(
    admin_resolve_chat_report.report_id, admin_resolve_chat_report.action,
    admin_resolve_chat_report.note
  )
$$;

revoke all on function chat_private.report_json(chat_private.reports),
chat_private.report_message(uuid, text, text), chat_private.reports_as_admin(text, integer, integer),
chat_private.resolve_report_as_admin(uuid, text, text), chat_private.unannounced_reports(integer),
chat_private.report_announced(uuid), public.report_chat_message(uuid, text, text),
public.admin_chat_reports(text, integer, integer), public.admin_resolve_chat_report(uuid, text, text)
from public, anon, authenticated, service_role;
-- Each checks its caller itself (a participant, the admin role).
grant execute on function chat_private.report_message(uuid, text, text),
chat_private.reports_as_admin(text, integer, integer),
chat_private.resolve_report_as_admin(uuid, text, text), public.report_chat_message(uuid, text, text),
public.admin_chat_reports(text, integer, integer), public.admin_resolve_chat_report(uuid, text, text)
to authenticated;
grant execute on function chat_private.unannounced_reports(integer), chat_private.report_announced(uuid)
to service_role;
