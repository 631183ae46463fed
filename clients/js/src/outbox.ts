// The outbox: every message sent and not yet acknowledged. Each send gets a
// client_message_id and keeps it across every retry (after an ack timeout, a dropped
// connection, a relay restart), and the database stores a client_message_id once: never a
// duplicate, never a silent loss. Errors a retry cannot fix mark the send failed, to retry
// or discard.
import type { ChatSocket } from './connection.js';
import type { ThreadMessage } from './sessions.js';
import type { Ack, ChatMessage, ErrorInfo, MessageType, Uuid } from './types.js';

export interface OutgoingMessage {
  type?: Exclude<MessageType, 'system'>;
  content?: string | null;
  reply_to_message_id?: Uuid | null;
  metadata?: Record<string, unknown>;
}

export interface OutboxEntry {
  clientMessageId: string;
  sessionId: Uuid;
  payload: OutgoingMessage;
  createdAt: string;
  state: 'queued' | 'in_flight' | 'failed';
  attempt: number;
  error?: ErrorInfo;
  resolve: (m: ChatMessage) => void;
  reject: (e: ErrorInfo) => void;
}

export interface OutboxHooks {
  /** The relay acknowledged a send with the stored message. */
  acked(m: ChatMessage): void;
  /** An entry of this session changed (queued, failed, settled, discarded). */
  changed(sessionId: Uuid): void;
}

/** Errors a retry cannot fix: the send fails and stays in the outbox as failed. */
const FINAL_ERRORS = new Set([
  'invalid_payload',
  'invalid_value',
  'not_found',
  'conflict',
  'forbidden',
  'payload_too_large',
  'unsupported_media_type',
]);

function newId(): string {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

export class Outbox {
  private readonly entries = new Map<string, OutboxEntry>();

  constructor(
    private readonly socket: ChatSocket,
    private readonly ackTimeoutMs: number,
    private readonly hooks: OutboxHooks,
  ) {}

  /** Queue a message (not sent yet: call flush). */
  add(sessionId: Uuid, payload: OutgoingMessage): { clientMessageId: string; done: Promise<ChatMessage> } {
    const clientMessageId = newId();
    let resolve!: (m: ChatMessage) => void;
    let reject!: (e: ErrorInfo) => void;
    const done = new Promise<ChatMessage>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    done.catch(() => undefined); // a failure is also shown in the thread
    this.entries.set(clientMessageId, {
      clientMessageId,
      sessionId,
      payload,
      createdAt: new Date().toISOString(),
      state: 'queued',
      attempt: 0,
      resolve,
      reject,
    });
    return { clientMessageId, done };
  }

  /** Try a failed send again (same client_message_id). */
  retry(clientMessageId: string): void {
    const e = this.entries.get(clientMessageId);
    if (!e || e.state !== 'failed') return;
    e.state = 'queued';
    e.error = undefined;
    this.hooks.changed(e.sessionId);
    this.flush();
  }

  discard(clientMessageId: string): void {
    const e = this.entries.get(clientMessageId);
    if (!e) return;
    this.entries.delete(clientMessageId);
    e.reject({ code: 'discarded', message: 'discarded' });
    this.hooks.changed(e.sessionId);
  }

  /** Sends not failed: queued or waiting for their ack. */
  get pendingCount(): number {
    return [...this.entries.values()].filter((e) => e.state !== 'failed').length;
  }

  /** The connection dropped: what waited for an ack goes again on the next one. */
  requeueInFlight(): void {
    for (const e of this.entries.values()) if (e.state === 'in_flight') e.state = 'queued';
  }

  /** Send every queued entry (when connected). */
  flush(): void {
    if (!this.socket.connected) return;
    for (const e of this.entries.values()) if (e.state === 'queued') void this.attempt(e);
  }

  /** The stored message for one of our sends arrived (ack or new_message): done. */
  settle(m: ChatMessage): void {
    const e = m.client_message_id ? this.entries.get(m.client_message_id) : undefined;
    if (!e) return;
    this.entries.delete(e.clientMessageId);
    e.resolve(m);
    this.hooks.changed(e.sessionId);
  }

  /** The session's sends as the thread shows them, after its stored messages. */
  pending(sessionId: Uuid, sender: { id: Uuid; name: string }): ThreadMessage[] {
    const out: ThreadMessage[] = [];
    for (const e of this.entries.values()) {
      if (e.sessionId !== sessionId) continue;
      out.push({
        id: `pending:${e.clientMessageId}`,
        session_id: sessionId,
        sender_id: sender.id,
        sender_name: sender.name,
        type: e.payload.type ?? 'text',
        content: e.payload.content ?? null,
        reply_to_message_id: e.payload.reply_to_message_id ?? null,
        metadata: (e.payload.metadata ?? {}) as ThreadMessage['metadata'],
        client_message_id: e.clientMessageId,
        created_at: e.createdAt,
        seq: Number.MAX_SAFE_INTEGER,
        pending: true,
        error: e.error,
      });
    }
    return out;
  }

  private async attempt(e: OutboxEntry): Promise<void> {
    e.state = 'in_flight';
    const attempt = ++e.attempt;
    let ack: Ack<{ message: ChatMessage }>;
    try {
      ack = await this.socket.timeout(this.ackTimeoutMs).emitWithAck('send_message', {
        session_id: e.sessionId,
        type: e.payload.type ?? 'text',
        content: e.payload.content ?? null,
        reply_to_message_id: e.payload.reply_to_message_id ?? null,
        metadata: e.payload.metadata ?? {},
        client_message_id: e.clientMessageId,
      });
    } catch {
      // No ack in time (the connection dropped or the relay is away): the next connect
      // sends it again; the server stores a client_message_id once.
      if (this.entries.get(e.clientMessageId) === e && e.attempt === attempt && e.state === 'in_flight') {
        e.state = 'queued';
        if (this.socket.connected) setTimeout(() => this.flush(), 1000);
      }
      return;
    }
    if (this.entries.get(e.clientMessageId) !== e) return; // settled by new_message already
    if (ack.ok) {
      this.hooks.acked(ack.message);
      this.settle(ack.message);
      return;
    }
    if (FINAL_ERRORS.has(ack.error.code)) {
      e.state = 'failed';
      e.error = ack.error;
      e.reject(ack.error);
      this.hooks.changed(e.sessionId);
    } else {
      e.state = 'queued'; // rate limited or unavailable: later
      setTimeout(() => this.flush(), ack.error.code === 'rate_limited' ? 1500 : 1000);
    }
  }
}
