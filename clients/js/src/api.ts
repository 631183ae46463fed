// The REST API under /api/chat, typed. Every call carries the current access token.
import type {
  ChatMessage,
  ChatSession,
  ErrorInfo,
  ParticipantReceipt,
  Report,
  ReportCategory,
  SearchHit,
  SessionStatus,
  SessionType,
  Uuid,
} from './types.js';

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, info: ErrorInfo) {
    super(info.message);
    this.status = status;
    this.code = info.code;
  }
}

export interface SessionFilters {
  q?: string;
  type?: SessionType | '';
  status?: SessionStatus | '';
  limit?: number;
  offset?: number;
}

export interface UploadOptions {
  caption?: string;
  replyTo?: Uuid | null;
  /** Bytes sent so far and the total (browsers only: XMLHttpRequest reports progress). */
  onProgress?: (sent: number, total: number) => void;
  signal?: AbortSignal;
}

export interface UploadResult {
  message: ChatMessage;
  file: { storage_path: string; file_name: string; mime_type: string; size_bytes: number; url: string };
}

function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

export class ChatApi {
  constructor(
    private readonly baseUrl: string,
    private readonly token: () => string,
  ) {}

  url(path: string): string {
    return new URL(path, this.baseUrl.endsWith('/') ? this.baseUrl : `${this.baseUrl}/`).toString();
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.token()}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(this.url(path), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return parse<T>(res.status, await res.text());
  }

  listSessions(filters: SessionFilters = {}) {
    return this.request<{ sessions: ChatSession[]; has_more: boolean }>(
      'GET',
      `api/chat/sessions${query({ ...filters })}`,
    );
  }
  getSession(id: Uuid) {
    return this.request<{ session: ChatSession }>('GET', `api/chat/sessions/${id}`);
  }
  messages(id: Uuid, opts: { limit?: number; before_id?: Uuid } = {}) {
    return this.request<{ messages: ChatMessage[]; has_more: boolean }>(
      'GET',
      `api/chat/messages/${id}${query(opts)}`,
    );
  }
  send(body: {
    session_id: Uuid;
    type?: string;
    content?: string | null;
    reply_to_message_id?: Uuid | null;
    metadata?: Record<string, unknown>;
    client_message_id?: string;
  }) {
    return this.request<{ message: ChatMessage }>('POST', 'api/chat/messages', body);
  }
  markRead(id: Uuid, upTo?: Uuid) {
    return this.request<{ read_count: number }>('PUT', `api/chat/messages/${id}/read`, {
      up_to_message_id: upTo ?? null,
    });
  }
  receipts(id: Uuid) {
    return this.request<{ session_id: Uuid; participants: ParticipantReceipt[] }>(
      'GET',
      `api/chat/sessions/${id}/receipts`,
    );
  }
  search(q: string, opts: { session_id?: Uuid; limit?: number; before_id?: Uuid } = {}) {
    return this.request<{ results: SearchHit[]; has_more: boolean }>(
      'GET',
      `api/chat/search${query({ q, ...opts })}`,
    );
  }
  // ---------------------------------------------------------------- moderation
  /** The sender edits their message within the edit window. */
  editMessage(sessionId: Uuid, messageId: Uuid, content: string) {
    return this.request<{ message: ChatMessage }>('PATCH', `api/chat/messages/${sessionId}/${messageId}`, {
      content,
    });
  }
  /** The sender deletes their message within the edit window (a tombstone stays). */
  deleteMessage(sessionId: Uuid, messageId: Uuid) {
    return this.request<{ message: ChatMessage }>('DELETE', `api/chat/messages/${sessionId}/${messageId}`);
  }
  reportMessage(sessionId: Uuid, messageId: Uuid, category: ReportCategory, note?: string) {
    return this.request<{ report: Report }>('POST', `api/chat/messages/${sessionId}/${messageId}/reports`, {
      category,
      note: note || null,
    });
  }
  reports(opts: { status?: 'open' | 'resolved'; limit?: number; offset?: number } = {}) {
    return this.request<{ reports: Report[]; total: number }>('GET', `api/chat/reports${query(opts)}`);
  }
  resolveReport(reportId: Uuid, action: 'dismiss' | 'redact' | 'suspend', note?: string) {
    return this.request<{ report: Report }>('POST', `api/chat/reports/${reportId}/resolve`, {
      action,
      note: note || null,
    });
  }
  suspendUser(userId: Uuid, reason: string, until: string | null = null) {
    return this.request<{ user_id: Uuid; suspended: boolean; until: string | null }>(
      'POST',
      `api/chat/users/${userId}/suspension`,
      { until, reason },
    );
  }
  liftSuspension(userId: Uuid) {
    return this.request<{ user_id: Uuid; suspended: boolean }>('DELETE', `api/chat/users/${userId}/suspension`);
  }
  freezeSession(sessionId: Uuid, frozen: boolean) {
    return this.request<{ session_id: Uuid; frozen: boolean; frozen_at: string | null }>(
      frozen ? 'POST' : 'DELETE',
      `api/chat/sessions/${sessionId}/freeze`,
    );
  }

  health() {
    return fetch(this.url('health')).then(async (r) => JSON.parse(await r.text()) as Record<string, unknown>);
  }
  monitoring() {
    return this.request<Record<string, unknown>>('GET', 'api/chat/monitoring');
  }
  audit(filters: { action?: string; session_id?: string; user_id?: string; since?: string; limit?: number } = {}) {
    return this.request<{ logs: Record<string, unknown>[]; total: number }>(
      'GET',
      `api/chat/audit${query(filters)}`,
    );
  }

  /** POST /api/chat/upload: the file becomes an audio, image or file message. */
  upload(sessionId: Uuid, file: Blob, name: string, opts: UploadOptions = {}): Promise<UploadResult> {
    const form = new FormData();
    form.append('session_id', sessionId); // before the file: participation is checked first
    if (opts.caption) form.append('caption', opts.caption);
    if (opts.replyTo) form.append('reply_to_message_id', opts.replyTo);
    form.append('file', file, name);
    const url = this.url('api/chat/upload');
    if (typeof XMLHttpRequest === 'undefined' || !opts.onProgress) {
      return fetch(url, {
        method: 'POST',
        headers: { Authorization: `Bearer ${this.token()}` },
        body: form,
        signal: opts.signal,
      }).then(async (r) => parse<UploadResult>(r.status, await r.text()));
    }
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', url);
      xhr.setRequestHeader('Authorization', `Bearer ${this.token()}`);
      xhr.upload.onprogress = (e) => opts.onProgress?.(e.loaded, e.total || file.size);
      xhr.onload = () => {
        try {
          resolve(parse<UploadResult>(xhr.status, xhr.responseText));
        } catch (err) {
          reject(err);
        }
      };
      xhr.onerror = () => reject(new ApiError(0, { code: 'network_error', message: 'the upload could not reach the server' }));
      opts.signal?.addEventListener('abort', () => xhr.abort());
      xhr.send(form);
    });
  }
}

function parse<T>(status: number, text: string): T {
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (status >= 200 && status < 300) return body as T;
  const info = (body as { error?: ErrorInfo } | null)?.error ?? {
    code: 'http_error',
    message: `HTTP ${status}`,
  };
  throw new ApiError(status, info);
}
