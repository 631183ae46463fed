// The typed chat client: composes the connection (socket life, reconnect, token refresh;
// connection.ts), the outbox (unsent messages, retries, idempotency; outbox.ts) and the
// state of each followed session (messages, presence, typing, receipts; sessions.ts), and
// speaks the protocol between them: rejoin with catch-up on every connect, dedupe by id,
// typing throttled to the server's coalescing, delivery receipts. It knows nothing of
// React; the hook (react.ts) subscribes to `change`.
import { ApiError, ChatApi } from './api.js';
import { Connection, type ChatSocket } from './connection.js';
import { Outbox, type OutgoingMessage } from './outbox.js';
import { compare, positionOf } from './positions.js';
import {
  DELETED_USER,
  SessionState,
  type DeliveryStatus,
  type SessionView,
  type ThreadMessage,
} from './sessions.js';
import { nameOf, roleOf } from './tokens.js';
import type { Ack, ChatMessage, ChatSession, ErrorInfo, PersonEvent, UserErasedEvent, Uuid } from './types.js';

export { DELETED_USER };
export type { DeliveryStatus, OutgoingMessage, SessionView, ThreadMessage };

export interface ClientEvents {
  change: () => void;
  connection: (connected: boolean) => void;
  message: (m: ChatMessage) => void;
  error: (e: ErrorInfo) => void;
  session_updated: (e: { session_id: Uuid; status: string }) => void;
  user_erased: (e: UserErasedEvent) => void;
}

export interface ChatClientOptions {
  /** The service's origin, e.g. http://127.0.0.1:5001 (Socket.IO and /api/chat). */
  url: string;
  token: string;
  /** Supplies a fresh access token before this one expires (and after a refusal). */
  refreshToken?: () => Promise<string>;
  transports?: ('websocket' | 'polling')[];
  /** How long a send waits for its ack before it is retried on the next connection. */
  ackTimeoutMs?: number;
  /** Acknowledge received messages as delivered (messages_delivered). Default true. */
  autoDeliver?: boolean;
}

const TYPING_THROTTLE_MS = 1000; // the server coalesces typing_start within 1 s
const TYPING_IDLE_MS = 3000;
const TYPING_SHOWN_MS = 6000; // a typer not heard of again is hidden (the server says 5 s)
const CATCH_UP_LIMIT = 500;

export class ChatClient {
  readonly api: ChatApi;
  readonly socket: ChatSocket;
  private readonly connection: Connection;
  private readonly outbox: Outbox;
  private readonly opts: Required<Omit<ChatClientOptions, 'refreshToken'>> &
    Pick<ChatClientOptions, 'refreshToken'>;
  private readonly sessions = new Map<Uuid, SessionState>();
  private readonly listeners = new Map<keyof ClientEvents, Set<(...a: never[]) => void>>();
  private readonly typingSent = new Map<Uuid, { at: number; idle?: ReturnType<typeof setTimeout> }>();
  /** Bumped on every change: React's useSyncExternalStore compares it. */
  version = 0;

  constructor(options: ChatClientOptions) {
    this.opts = {
      transports: ['websocket', 'polling'],
      ackTimeoutMs: 8000,
      autoDeliver: true,
      ...options,
    };
    this.connection = new Connection(
      {
        url: options.url,
        token: options.token,
        refreshToken: options.refreshToken,
        transports: this.opts.transports,
        ackTimeoutMs: this.opts.ackTimeoutMs,
      },
      {
        connected: () => this.onConnected(),
        disconnected: () => this.onDisconnected(),
        error: (e) => this.emit('error', e),
      },
    );
    this.api = new ChatApi(options.url, () => this.connection.token);
    this.socket = this.connection.socket;
    this.outbox = new Outbox(this.socket, this.opts.ackTimeoutMs, {
      acked: (m) => this.receive([m], false),
      changed: (sessionId) => this.changed(this.sessions.get(sessionId)),
    });
    this.wire();
  }

  // ---------------------------------------------------------------- identity and state
  get userId(): Uuid {
    return this.connection.claims.sub;
  }
  get userName(): string {
    return nameOf(this.connection.claims);
  }
  get role(): string {
    return roleOf(this.connection.claims);
  }
  get isAdmin(): boolean {
    return this.role === 'admin' || this.role === 'super_admin';
  }
  get connected(): boolean {
    return this.connection.connected;
  }
  get currentToken(): string {
    return this.connection.token;
  }

  on<K extends keyof ClientEvents>(name: K, fn: ClientEvents[K]): () => void {
    let set = this.listeners.get(name);
    if (!set) this.listeners.set(name, (set = new Set()));
    set.add(fn as (...a: never[]) => void);
    return () => set?.delete(fn as (...a: never[]) => void);
  }

  private emit<K extends keyof ClientEvents>(name: K, ...args: Parameters<ClientEvents[K]>): void {
    for (const fn of this.listeners.get(name) ?? []) {
      try {
        (fn as (...a: unknown[]) => void)(...args);
      } catch (err) {
        console.error(err);
      }
    }
  }

  private changed(session?: SessionState): void {
    if (session) session.cached = undefined;
    this.version++;
    this.emit('change');
  }

  // ---------------------------------------------------------------- connection
  connect(): void {
    this.connection.connect();
  }

  close(): void {
    for (const s of this.sessions.values()) s.dispose();
    for (const t of this.typingSent.values()) clearTimeout(t.idle);
    this.connection.close();
  }

  /** Ask the refreshToken callback for a new token and hand it to the relay. */
  refresh(): Promise<void> {
    return this.connection.refresh();
  }

  private onConnected(): void {
    this.emit('connection', true);
    this.changed();
    void this.resume();
  }

  private onDisconnected(): void {
    this.outbox.requeueInFlight();
    for (const st of this.sessions.values()) st.clearLive();
    this.emit('connection', false);
    this.changed();
  }

  /** On every connect: rejoin the open sessions (with catch-up), then flush the outbox. */
  private async resume(): Promise<void> {
    await Promise.all([...this.sessions.values()].map((st) => this.join(st)));
    this.outbox.flush();
  }

  private wire(): void {
    const s = this.socket;
    s.on('new_message', (m) => this.receive([m], true));
    s.on('session_joined', (e) => {
      const st = this.sessions.get(e.session_id);
      if (!st) return;
      st.online = new Set(e.participants_online);
      this.changed(st);
    });
    s.on('user_joined', (e) => this.presence(e, true));
    s.on('user_left', (e) => this.presence(e, false));
    s.on('online_users', (e) => {
      const st = this.sessions.get(e.session_id);
      if (!st) return;
      st.online = new Set(e.users);
      this.changed(st);
    });
    s.on('user_typing', (e) => this.typingEvent(e, true));
    s.on('user_stopped_typing', (e) => this.typingEvent(e, false));
    s.on('messages_read', (e) => this.receiptEvent(e.session_id, e.user_id, e.up_to_message_id, 'read'));
    s.on('messages_delivered', (e) =>
      this.receiptEvent(e.session_id, e.user_id, e.up_to_message_id, 'delivered'),
    );
    s.on('session_updated', (e) => this.emit('session_updated', e));
    s.on('user_erased', (e) => this.erased(e));
    s.on('message_updated', (e) =>
      this.patchMessage(e.session_id, e.message_id, { content: e.content, edited_at: e.edited_at }),
    );
    s.on('message_deleted', (e) =>
      this.patchMessage(e.session_id, e.message_id, {
        content: null,
        metadata: {},
        deleted: true,
        deleted_reason: e.reason,
      }),
    );
  }

  /** A message changed in place (edited, deleted, redacted): the thread shows its new state. */
  private patchMessage(sessionId: Uuid, messageId: Uuid, change: Partial<ChatMessage>): void {
    const st = this.sessions.get(sessionId);
    if (!st || !st.patch(messageId, change)) return;
    this.changed(st);
  }

  /** A participant's account was deleted: their messages here become what the service
   * now holds (tombstones, anonymous, or gone), so the thread matches a reload. */
  private erased(e: UserErasedEvent): void {
    const st = this.sessions.get(e.session_id);
    if (!st) return;
    st.erase(e);
    this.changed(st);
    this.emit('user_erased', e);
  }

  // ---------------------------------------------------------------- sessions
  private state(id: Uuid): SessionState {
    let st = this.sessions.get(id);
    if (!st) {
      st = new SessionState(id);
      this.sessions.set(id, st);
    }
    return st;
  }

  isOpen(id: Uuid): boolean {
    return this.sessions.has(id);
  }

  /** Follow a session: join its room (now and after every reconnect), load its newest
   *  page, participants and receipts. */
  async open(id: Uuid): Promise<void> {
    const known = this.sessions.has(id);
    const st = this.state(id);
    if (known) return;
    const joining = this.socket.connected ? this.join(st) : Promise.resolve();
    await Promise.all([joining, this.loadNewest(st), this.loadReceipts(st)]);
  }

  async leave(id: Uuid): Promise<void> {
    const st = this.sessions.get(id);
    if (!st) return;
    this.sessions.delete(id);
    clearTimeout(st.deliverTimer);
    if (this.socket.connected) {
      await this.socket.timeout(this.opts.ackTimeoutMs).emitWithAck('leave_session', { session_id: id }).catch(() => undefined);
    }
    this.changed();
  }

  private async join(st: SessionState): Promise<void> {
    // Catch-up comes as new_message events (at most 500 per join): ask again while full.
    for (let round = 0; round < 20; round++) {
      const last = st.newest;
      let ack: Ack<{ missed: number }>;
      try {
        ack = await this.socket
          .timeout(this.opts.ackTimeoutMs)
          .emitWithAck('join_session', last ? { session_id: st.id, last_message_id: last.id } : { session_id: st.id });
      } catch {
        return; // disconnected meanwhile: the next connect joins again
      }
      if (!ack.ok) {
        this.emit('error', ack.error);
        return;
      }
      if (ack.missed < CATCH_UP_LIMIT) return;
    }
  }

  private async loadNewest(st: SessionState): Promise<void> {
    try {
      const [page, session] = await Promise.all([this.api.messages(st.id, { limit: 50 }), this.api.getSession(st.id)]);
      st.participants = session.session.participants;
      st.hasOlder = page.has_more;
      st.loaded = true;
      this.receive(page.messages, false);
      this.changed(st);
    } catch (err) {
      this.emit('error', toInfo(err));
    }
  }

  /** The page before the oldest message held (keyset on before_id). */
  async loadOlder(id: Uuid, limit = 50): Promise<number> {
    const st = this.sessions.get(id);
    if (!st || !st.hasOlder) return 0;
    const oldest = st.oldest;
    const page = await this.api.messages(id, oldest ? { limit, before_id: oldest.id } : { limit });
    st.hasOlder = page.has_more;
    this.receive(page.messages, false);
    this.changed(st);
    return page.messages.length;
  }

  private async loadReceipts(st: SessionState): Promise<void> {
    try {
      const r = await this.api.receipts(st.id);
      for (const p of r.participants) {
        st.receipts.set(p.user_id, {
          delivered: p.delivered ? positionOf(p.delivered) : undefined,
          read: p.read ? positionOf(p.read) : undefined,
        });
      }
      this.changed(st);
    } catch (err) {
      this.emit('error', toInfo(err));
    }
  }

  // ---------------------------------------------------------------- messages in
  private receive(messages: ChatMessage[], live: boolean): void {
    const touched = new Set<SessionState>();
    for (const m of messages) {
      const st = this.sessions.get(m.session_id);
      if (!st || !st.add(m)) continue; // not followed, or a duplicate: dropped
      touched.add(st);
      if (m.client_message_id && m.sender_id === this.userId) this.outbox.settle(m);
      if (m.sender_id) st.stopTyping(m.sender_id);
      if (live) this.emit('message', m);
    }
    for (const st of touched) {
      if (this.opts.autoDeliver) this.scheduleDelivered(st);
      this.changed(st);
    }
  }

  private scheduleDelivered(st: SessionState): void {
    const newest = [...st.ordered].reverse().find((m) => m.sender_id !== this.userId);
    if (!newest) return;
    const mine = st.receipts.get(this.userId);
    if (mine?.delivered && compare(mine.delivered, positionOf(newest)) >= 0) return;
    clearTimeout(st.deliverTimer);
    st.deliverTimer = setTimeout(() => {
      if (!this.socket.connected || !this.sessions.has(st.id)) return;
      void this.socket
        .timeout(this.opts.ackTimeoutMs)
        .emitWithAck('messages_delivered', { session_id: st.id, up_to_message_id: newest.id })
        .catch(() => undefined);
    }, 150);
  }

  private receiptEvent(sessionId: Uuid, userId: Uuid, messageId: Uuid, kind: 'read' | 'delivered'): void {
    const st = this.sessions.get(sessionId);
    if (!st) return;
    const m = st.byId.get(messageId);
    if (!m) {
      void this.loadReceipts(st); // a message we do not hold: ask for the cursors
      return;
    }
    st.advanceReceipt(userId, m, kind);
    this.changed(st);
  }

  private presence(e: PersonEvent, online: boolean): void {
    const st = this.sessions.get(e.session_id);
    if (!st) return;
    if (online) st.online.add(e.user_id);
    else st.online.delete(e.user_id);
    this.changed(st);
  }

  private typingEvent(e: PersonEvent, typing: boolean): void {
    const st = this.sessions.get(e.session_id);
    if (!st || e.user_id === this.userId) return;
    st.stopTyping(e.user_id);
    if (typing) {
      const timer = setTimeout(() => {
        st.typing.delete(e.user_id);
        this.changed(st);
      }, TYPING_SHOWN_MS);
      st.typing.set(e.user_id, { name: e.user_name, timer });
    }
    this.changed(st);
  }

  // ---------------------------------------------------------------- messages out
  /** Queue a message: it is sent now if connected, else on the next connection, and
   *  retried (same client_message_id, so never stored twice) until the relay acks it. */
  send(sessionId: Uuid, message: OutgoingMessage): { clientMessageId: string; done: Promise<ChatMessage> } {
    const sent = this.outbox.add(sessionId, message);
    this.stopTyping(sessionId, false);
    this.changed(this.sessions.get(sessionId));
    this.outbox.flush();
    return sent;
  }

  /** Try a failed send again (same client_message_id). */
  retry(clientMessageId: string): void {
    this.outbox.retry(clientMessageId);
  }

  discard(clientMessageId: string): void {
    this.outbox.discard(clientMessageId);
  }

  get pendingCount(): number {
    return this.outbox.pendingCount;
  }

  // ---------------------------------------------------------------- read state, typing
  async markRead(sessionId: Uuid, upTo?: Uuid): Promise<number> {
    const st = this.sessions.get(sessionId);
    const newest = upTo ?? st?.newest?.id;
    if (!this.socket.connected) return 0;
    const ack = await this.socket
      .timeout(this.opts.ackTimeoutMs)
      .emitWithAck('mark_messages_read', newest ? { session_id: sessionId, up_to_message_id: newest } : { session_id: sessionId });
    if (!ack.ok) throw Object.assign(new Error(ack.error.message), ack.error);
    return ack.read_count;
  }

  /** Call on every keystroke: at most one typing_start a second, typing_stop after a pause. */
  typing(sessionId: Uuid): void {
    if (!this.socket.connected) return;
    const now = Date.now();
    const t = this.typingSent.get(sessionId) ?? { at: 0 };
    if (now - t.at >= TYPING_THROTTLE_MS) {
      t.at = now;
      this.socket.emit('typing_start', { session_id: sessionId }, () => undefined);
    }
    clearTimeout(t.idle);
    t.idle = setTimeout(() => this.stopTyping(sessionId, true), TYPING_IDLE_MS);
    this.typingSent.set(sessionId, t);
  }

  stopTyping(sessionId: Uuid, tell = true): void {
    const t = this.typingSent.get(sessionId);
    if (!t) return;
    clearTimeout(t.idle);
    this.typingSent.delete(sessionId);
    if (tell && this.socket.connected) this.socket.emit('typing_stop', { session_id: sessionId }, () => undefined);
  }

  // ---------------------------------------------------------------- views
  /** The thread as shown: stored messages oldest first, then the outbox's. Stable between
   *  changes (same array), so React can compare it. */
  view(id: Uuid): SessionView | undefined {
    const st = this.sessions.get(id);
    if (!st) return undefined;
    return st.view(() => this.outbox.pending(id, { id: this.userId, name: this.userName }));
  }

  /** sending, sent, delivered (every other participant's device has it), read (every other
   *  participant read it), or failed; undefined for others' messages. */
  statusOf(m: ThreadMessage): DeliveryStatus | undefined {
    if (m.sender_id !== this.userId) return undefined;
    if (m.pending) return m.error ? 'failed' : 'sending';
    const st = this.sessions.get(m.session_id);
    if (!st) return 'sent';
    return st.status(m, this.userId);
  }

  message(sessionId: Uuid, id: Uuid): ChatMessage | undefined {
    return this.sessions.get(sessionId)?.byId.get(id);
  }
}

export function toInfo(err: unknown): ErrorInfo {
  if (err instanceof ApiError) return { code: err.code, message: err.message };
  if (err && typeof err === 'object' && 'code' in err && 'message' in err) {
    return { code: String((err as ErrorInfo).code), message: String((err as ErrorInfo).message) };
  }
  return { code: 'error', message: err instanceof Error ? err.message : String(err) };
}

export type { ChatSession };
