import type { ErrorInfo } from '@consult-chat/client';

/** The time, with the date when it is not today. */
export function time(iso: string): string {
  const d = new Date(iso);
  const t = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return d.toDateString() === new Date().toDateString()
    ? t
    : `${d.toLocaleDateString([], { day: 'numeric', month: 'short' })} ${t}`;
}

export function dateTime(iso: string): string {
  return new Date(iso).toLocaleString();
}

export function duration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '';
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

export function bytes(n: number | undefined): string {
  if (n === undefined) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} kB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** A server error in words a person understands. */
export function explain(e: ErrorInfo): string {
  switch (e.code) {
    case 'rate_limited':
      return 'You are sending too fast: wait a moment and try again.';
    case 'conflict':
      return 'This session is closed: it takes no new messages.';
    case 'payload_too_large':
      return 'The file is too large: 10 MB at most.';
    case 'unsupported_media_type':
      return `This type of file is not accepted (${e.message}).`;
    case 'not_found':
      return 'Not found, or you are not a participant of this session.';
    case 'token_expired':
      return 'Your sign-in has expired: sign in again.';
    case 'invalid_token':
    case 'missing_token':
      return 'The access token was refused: sign in again.';
    case 'forbidden':
      return 'You are not allowed to do that.';
    case 'edit_window_closed':
      return 'Too late: messages can be changed for 15 minutes after they are sent.';
    case 'message_deleted':
      return 'This message was deleted.';
    case 'suspended':
      return `You are suspended from chat: ${e.message}.`;
    case 'session_frozen':
      return 'This session is frozen by a moderator: it takes no new messages.';
    case 'contact_info_blocked':
      return 'Phone numbers, e-mail addresses and links cannot be shared here.';
    case 'network_error':
      return 'The server could not be reached.';
    default:
      return e.message || e.code;
  }
}

const PALETTE = ['#1d4ed8', '#7e22ce', '#be185d', '#9a3412', '#166534', '#155e75'];
export function colorFor(id: string): string {
  let h = 0;
  for (const c of id) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return PALETTE[h % PALETTE.length];
}
