// The typed chat client: owns the connection, the state of open sessions and the protocol
// (token refresh, rejoin with catch-up on every connect, dedupe by id, an outbox retried
// until acked, typing throttled to the server's coalescing, delivery receipts). It knows
// nothing of React; the hook (react.ts) subscribes to `change`.
import { io, type Socket } from 'socket.io-client';
import { ApiError, ChatApi } from './api.js';
import { compare, later, positionOf, type Position } from './positions.js';
import { decodeToken, nameOf, roleOf, type TokenClaims } from './tokens.js';
import type {
  Ack,
  ChatMessage,
  ChatSession,
  ClientToServerEvents,
  ErrorInfo,
  MessageType,
  PersonEvent,
  ServerToClientEvents,
  UserErasedEvent,
  Uuid,
} from './types.js';

export type DeliveryStatus = 'sending' | 'sent' | 'delivered' | 'read' | 'failed';

/** A message as the UI shows it: a stored one, or one still in the outbox. */
export interface ThreadMessage extends ChatMessage {
  pending?: boolean;
  error?: ErrorInfo;
}

export interface OutgoingMessage {
  type?: Exclude<MessageType, 'system'>;
  content?: string | null;
  reply_to_message_id?: Uuid | null;
  metadata?: Record<string, unknown>;
}

interface OutboxEntry {
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

interface Receipt {
  delivered?: Position;
  read?: Position;
}

export interface SessionView {
  id: Uuid;
  messages: ThreadMessage[];
  hasOlder: boolean;
  online: Uuid[];
  typing: { user_id: Uuid; user_name: string }[];
  participants: Uuid[];
}

interface SessionState {
  id: Uuid;
  byId: Map<Uuid, ChatMessage>;
  ordered: ChatMessage[];
  hasOlder: boolean;
  loaded: boolean;
  online: Set<Uuid>;
  typing: Map<Uuid, { name: string; timer: ReturnType<typeof setTimeout> }>;
  receipts: Map<Uuid, Receipt>;
  participants: Uuid[];
  deliverTimer?: ReturnType<typeof setTimeout>;
  view?: SessionView;
}

export interface ClientEvents {
  change: () => void;
  connection: (connected: boolean) => void;
  message: (m: ChatMessage) => void;
  error: (e: ErrorInfo) => void;
  session_updated: (e: { session_id: Uuid; status: string }) => void;
  user_erased: (e: UserErasedEvent) => void;
}

/** How a message whose sender's account was deleted names its sender. */
export const DELETED_USER = 'Deleted user';

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
const TYPING_THROTTLE_MS = 1000; // the server coalesces typing_start within 1 s
const TYPING_IDLE_MS = 3000;
const TYPING_SHOWN_MS = 6000; // a typer not heard of again is hidden (the server says 5 s)
const CATCH_UP_LIMIT = 500;

function newId(): string {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

export class ChatClient {
  readonly api: ChatApi;
  readonly socket: Socket<ServerToClientEvents, ClientToServerEvents>;
  private token: string;
  private claims: TokenClaims;
  private readonly opts: Required<Omit<ChatClientOptions, 'refreshToken'>> &
    Pick<ChatClientOptions, 'refreshToken'>;
  private readonly sessions = new Map<Uuid, SessionState>();
  private readonly outbox = new Map<string, OutboxEntry>();
  private readonly listeners = new Map<keyof ClientEvents, Set<(...a: never[]) => void>>();
  private refreshTimer?: ReturnType<typeof setTimeout>;
  private reconnectTimer?: ReturnType<typeof setTimeout>;
  private readonly typingSent = new Map<Uuid, { at: number; idle?: ReturnType<typeof setTimeout> }>();
  private closed = false;
  private refreshing?: Promise<void>;
  private retryDelay = 500;
  /** Bumped on every change: React's useSyncExternalStore compares it. */
  version = 0;

  constructor(options: ChatClientOptions) {
    this.opts = {
      transports: ['websocket', 'polling'],
      ackTimeoutMs: 8000,
      autoDeliver: true,
      ...options,
    };
    this.token = options.token;
    this.claims = decodeToken(options.token);
    this.api = new ChatApi(options.url, () => this.token);
    this.socket = io(options.url, {
      autoConnect: false,
      transports: this.opts.transports,
      // A function: every (re)connection presents the current token.
      auth: (cb) => cb({ token: this.token }),
      reconnection: true,
      reconnectionDelay: 300,
      reconnectionDelayMax: 3000,
    });
    this.wire();
  }

  // ---------------------------------------------------------------- identity and state
  get userId(): Uuid {
    return this.claims.sub;
  }
  get userName(): string {
    return nameOf(this.claims);
  }
  get role(): string {
    return roleOf(this.claims);
  }
  get isAdmin(): boolean {
    return this.role === 'admin' || this.role === 'super_admin';
  }
  get connected(): boolean {
    return this.socket.connected;
  }
  get currentToken(): string {
    return this.token;
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
    if (session) session.view = undefined;
    this.version++;
    this.emit('change');
  }

  // ---------------------------------------------------------------- connection
  connect(): void {
    this.closed = false;
    this.scheduleRefresh();
    if (typeof window !== 'undefined' && !this.watchingNetwork) {
      // A browser knows when the network goes: drop the transport at once (an open
      // WebSocket may otherwise linger until its ping times out) and come back with it.
      this.watchingNetwork = true;
      window.addEventListener('offline', this.onOffline);
      window.addEventListener('online', this.onOnline);
    }
    this.socket.connect();
  }

  private watchingNetwork = false;
  private readonly onOffline = () => {
    if (this.socket.connected) this.socket.io.engine?.close();
  };
  private readonly onOnline = () => {
    if (!this.closed && !this.socket.connected) this.socket.connect();
  };

  close(): void {
    this.closed = true;
    clearTimeout(this.refreshTimer);
    clearTimeout(this.reconnectTimer);
    for (const s of this.sessions.values()) {
      clearTimeout(s.deliverTimer);
      for (const t of s.typing.values()) clearTimeout(t.timer);
    }
    for (const t of this.typingSent.values()) clearTimeout(t.idle);
    if (this.watchingNetwork) {
      window.removeEventListener('offline', this.onOffline);
      window.removeEventListener('online', this.onOnline);
      this.watchingNetwork = false;
    }
    this.socket.disconnect();
  }

  private wire(): void {
    const s = this.socket;
    s.on('connect', () => {
      this.retryDelay = 500;
      this.emit('connection', true);
      this.changed();
      void this.resume();
    });
    s.on('disconnect', (reason) => {
      for (const e of this.outbox.values()) if (e.state === 'in_flight') e.state = 'queued';
      for (const st of this.sessions.values()) {
        st.online.clear();
        for (const t of st.typing.values()) clearTimeout(t.timer);
        st.typing.clear();
        st.view = undefined;
      }
      this.emit('connection', false);
      this.changed();
      // The server closed the socket (relay shutting down, token expired): socket.io does
      // not reconnect by itself then, so we do, with a fresh token when one is due.
      if (reason === 'io server disconnect' && !this.closed) this.reconnectSoon();
    });
    s.on('connect_error', (err: Error & { data?: { code?: string } }) => {
      if (this.closed || s.active) return; // a transport failure: socket.io retries itself
      // Refused by the server (token): get a fresh token, then try again.
      const code = err.data?.code;
      if (code === 'token_expired' || code === 'invalid_token') void this.refresh().catch(() => undefined);
      this.reconnectSoon();
    });
    s.on('error', (e) => {
      if (e.code === 'token_expired') void this.refresh().catch(() => undefined);
      this.emit('error', e);
    });
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
    const old = st?.byId.get(messageId);
    if (!st || !old) return;
    const next = { ...old, ...change };
    st.byId.set(messageId, next);
    st.ordered = st.ordered.map((m) => (m.id === messageId ? next : m));
    this.changed(st);
  }

  /** A participant's account was deleted: their messages here become what the service
   * now holds (tombstones, anonymous, or gone), so the thread matches a reload. */
  private erased(e: UserErasedEvent): void {
    const st = this.sessions.get(e.session_id);
    if (!st) return;
    st.participants = st.participants.filter((u) => u !== e.user_id);
    st.online.delete(e.user_id);
    st.typing.delete(e.user_id);
    st.receipts.delete(e.user_id);
    const theirs = st.ordered.filter((m) => m.sender_id === e.user_id && m.type !== 'system');
    for (const m of theirs) {
      if (e.mode === 'delete') {
        st.byId.delete(m.id);
        continue;
      }
      const gone: ChatMessage =
        e.mode === 'redact'
          ? { ...m, sender_id: null, sender_name: DELETED_USER, content: null, metadata: {},
              client_message_id: null, deleted: true }
          : { ...m, sender_id: null, sender_name: DELETED_USER };
      st.byId.set(m.id, gone);
    }
    st.ordered = st.ordered
      .filter((m) => st.byId.has(m.id))
      .map((m) => st.byId.get(m.id) ?? m);
    this.changed(st);
    this.emit('user_erased', e);
  }

  private reconnectSoon(): void {
    clearTimeout(this.reconnectTimer);
    const delay = this.retryDelay * (0.75 + Math.random() / 2);
    this.retryDelay = Math.min(this.retryDelay * 2, 5000);
    this.reconnectTimer = setTimeout(() => {
      if (!this.closed && !this.socket.connected) this.socket.connect();
    }, delay);
  }

  /** On every connect: rejoin the open sessions (with catch-up), then flush the outbox. */
  private async resume(): Promise<void> {
    await Promise.all([...this.sessions.values()].map((st) => this.join(st)));
    this.flushOutbox();
  }

  // ---------------------------------------------------------------- tokens
  private scheduleRefresh(): void {
    clearTimeout(this.refreshTimer);
    if (!this.opts.refreshToken) return;
    const lifetimeMs = this.claims.exp * 1000 - Date.now();
    const margin = Math.min(60_000, Math.max(lifetimeMs / 2, 0));
    this.refreshTimer = setTimeout(
      () => void this.refresh().catch((err) => this.emit('error', { code: 'refresh_failed', message: String(err) })),
      Math.max(0, Math.min(lifetimeMs - margin, 2 ** 31 - 1)),
    );
  }

  /** Ask the refreshToken callback for a new token and hand it to the relay. */
  refresh(): Promise<void> {
    if (!this.opts.refreshToken) return Promise.reject(new Error('no refreshToken callback'));
    this.refreshing ??= (async () => {
      try {
        const token = await this.opts.refreshToken!();
        const claims = decodeToken(token);
        this.token = token;
        this.claims = claims;
        if (this.socket.connected) {
          const ack = await this.socket.timeout(this.opts.ackTimeoutMs).emitWithAck('refresh_token', { token });
          if (!ack.ok) this.emit('error', ack.error);
        }
        this.scheduleRefresh();
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  // ---------------------------------------------------------------- sessions
  private state(id: Uuid): SessionState {
    let st = this.sessions.get(id);
    if (!st) {
      st = {
        id,
        byId: new Map(),
        ordered: [],
        hasOlder: true,
        loaded: false,
        online: new Set(),
        typing: new Map(),
        receipts: new Map(),
        participants: [],
      };
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
      const last = st.ordered[st.ordered.length - 1];
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
    const oldest = st.ordered[0];
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
      if (!st || st.byId.has(m.id)) continue; // not followed, or a duplicate: dropped
      st.byId.set(m.id, m);
      insertSorted(st.ordered, m);
      touched.add(st);
      if (m.client_message_id && m.sender_id === this.userId) this.settle(m);
      if (m.sender_id && st.typing.has(m.sender_id)) {
        clearTimeout(st.typing.get(m.sender_id)!.timer);
        st.typing.delete(m.sender_id);
      }
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
    const r = st.receipts.get(userId) ?? {};
    const pos = positionOf(m);
    if (kind === 'read') r.read = later(r.read, pos);
    r.delivered = later(r.delivered, pos);
    st.receipts.set(userId, r);
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
    const old = st.typing.get(e.user_id);
    if (old) clearTimeout(old.timer);
    if (typing) {
      const timer = setTimeout(() => {
        st.typing.delete(e.user_id);
        this.changed(st);
      }, TYPING_SHOWN_MS);
      st.typing.set(e.user_id, { name: e.user_name, timer });
    } else {
      st.typing.delete(e.user_id);
    }
    this.changed(st);
  }

  // ---------------------------------------------------------------- messages out
  /** Queue a message: it is sent now if connected, else on the next connection, and
   *  retried (same client_message_id, so never stored twice) until the relay acks it. */
  send(sessionId: Uuid, message: OutgoingMessage): { clientMessageId: string; done: Promise<ChatMessage> } {
    const clientMessageId = newId();
    let resolve!: (m: ChatMessage) => void;
    let reject!: (e: ErrorInfo) => void;
    const done = new Promise<ChatMessage>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    done.catch(() => undefined); // a failure is also shown in the thread
    this.outbox.set(clientMessageId, {
      clientMessageId,
      sessionId,
      payload: message,
      createdAt: new Date().toISOString(),
      state: 'queued',
      attempt: 0,
      resolve,
      reject,
    });
    this.stopTyping(sessionId, false);
    this.changed(this.sessions.get(sessionId));
    this.flushOutbox();
    return { clientMessageId, done };
  }

  /** Try a failed send again (same client_message_id). */
  retry(clientMessageId: string): void {
    const e = this.outbox.get(clientMessageId);
    if (!e || e.state !== 'failed') return;
    e.state = 'queued';
    e.error = undefined;
    this.changed(this.sessions.get(e.sessionId));
    this.flushOutbox();
  }

  discard(clientMessageId: string): void {
    const e = this.outbox.get(clientMessageId);
    if (!e) return;
    this.outbox.delete(clientMessageId);
    e.reject({ code: 'discarded', message: 'discarded' });
    this.changed(this.sessions.get(e.sessionId));
  }

  get pendingCount(): number {
    return [...this.outbox.values()].filter((e) => e.state !== 'failed').length;
  }

  private flushOutbox(): void {
    if (!this.socket.connected) return;
    for (const e of this.outbox.values()) if (e.state === 'queued') void this.attempt(e);
  }

  private async attempt(e: OutboxEntry): Promise<void> {
    e.state = 'in_flight';
    const attempt = ++e.attempt;
    let ack: Ack<{ message: ChatMessage }>;
    try {
      ack = await this.socket.timeout(this.opts.ackTimeoutMs).emitWithAck('send_message', {
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
      if (this.outbox.get(e.clientMessageId) === e && e.attempt === attempt && e.state === 'in_flight') {
        e.state = 'queued';
        if (this.socket.connected) setTimeout(() => this.flushOutbox(), 1000);
      }
      return;
    }
    if (this.outbox.get(e.clientMessageId) !== e) return; // settled by new_message already
    if (ack.ok) {
      this.receive([ack.message], false);
      this.settle(ack.message);
      return;
    }
    if (FINAL_ERRORS.has(ack.error.code)) {
      e.state = 'failed';
      e.error = ack.error;
      e.reject(ack.error);
      this.changed(this.sessions.get(e.sessionId));
    } else {
      e.state = 'queued'; // rate limited or unavailable: later
      setTimeout(() => this.flushOutbox(), ack.error.code === 'rate_limited' ? 1500 : 1000);
    }
  }

  private settle(m: ChatMessage): void {
    const e = m.client_message_id ? this.outbox.get(m.client_message_id) : undefined;
    if (!e) return;
    this.outbox.delete(e.clientMessageId);
    e.resolve(m);
    this.changed(this.sessions.get(e.sessionId));
  }

  // ---------------------------------------------------------------- read state, typing
  async markRead(sessionId: Uuid, upTo?: Uuid): Promise<number> {
    const st = this.sessions.get(sessionId);
    const newest = upTo ?? st?.ordered[st.ordered.length - 1]?.id;
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
    if (st.view) return st.view;
    const pending: ThreadMessage[] = [];
    for (const e of this.outbox.values()) {
      if (e.sessionId !== id) continue;
      pending.push({
        id: `pending:${e.clientMessageId}`,
        session_id: id,
        sender_id: this.userId,
        sender_name: this.userName,
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
    st.view = {
      id,
      messages: pending.length ? [...st.ordered, ...pending] : st.ordered.slice(),
      hasOlder: st.hasOlder,
      online: [...st.online],
      typing: [...st.typing].map(([user_id, t]) => ({ user_id, user_name: t.name })),
      participants: st.participants,
    };
    return st.view;
  }

  /** sending, sent, delivered (every other participant's device has it), read (every other
   *  participant read it), or failed; undefined for others' messages. */
  statusOf(m: ThreadMessage): DeliveryStatus | undefined {
    if (m.sender_id !== this.userId) return undefined;
    if (m.pending) return m.error ? 'failed' : 'sending';
    const st = this.sessions.get(m.session_id);
    if (!st) return 'sent';
    const others = st.participants.filter((p) => p !== this.userId);
    if (!others.length) return 'sent';
    const pos = positionOf(m);
    const reached = (k: keyof Receipt) =>
      others.every((u) => {
        const r = st.receipts.get(u)?.[k];
        return r !== undefined && compare(r, pos) >= 0;
      });
    if (reached('read')) return 'read';
    if (reached('delivered')) return 'delivered';
    return 'sent';
  }

  message(sessionId: Uuid, id: Uuid): ChatMessage | undefined {
    return this.sessions.get(sessionId)?.byId.get(id);
  }
}

function insertSorted(list: ChatMessage[], m: ChatMessage): void {
  const pos = positionOf(m);
  let i = list.length;
  while (i > 0 && compare(positionOf(list[i - 1]), pos) > 0) i--;
  list.splice(i, 0, m);
}

export function toInfo(err: unknown): ErrorInfo {
  if (err instanceof ApiError) return { code: err.code, message: err.message };
  if (err && typeof err === 'object' && 'code' in err && 'message' in err) {
    return { code: String((err as ErrorInfo).code), message: String((err as ErrorInfo).message) };
  }
  return { code: 'error', message: err instanceof Error ? err.message : String(err) };
}

export type { ChatSession };
