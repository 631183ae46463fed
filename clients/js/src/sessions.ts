// The state of one followed session: its messages (deduped by id, in (created_at, seq)
// order), who is online and typing, every participant's delivered/read cursor, and the
// view the UI reads. Plain data and its rules; the client decides when to change it and
// tells its listeners.
import { compare, later, positionOf, type Position } from './positions.js';
import type { ChatMessage, ErrorInfo, UserErasedEvent, Uuid } from './types.js';

export type DeliveryStatus = 'sending' | 'sent' | 'delivered' | 'read' | 'failed';

/** A message as the UI shows it: a stored one, or one still in the outbox. */
export interface ThreadMessage extends ChatMessage {
  pending?: boolean;
  error?: ErrorInfo;
}

export interface SessionView {
  id: Uuid;
  messages: ThreadMessage[];
  hasOlder: boolean;
  online: Uuid[];
  typing: { user_id: Uuid; user_name: string }[];
  participants: Uuid[];
}

/** How a message whose sender's account was deleted names its sender. */
export const DELETED_USER = 'Deleted user';

export interface Receipt {
  delivered?: Position;
  read?: Position;
}

export class SessionState {
  readonly byId = new Map<Uuid, ChatMessage>();
  ordered: ChatMessage[] = [];
  hasOlder = true;
  loaded = false;
  online = new Set<Uuid>();
  readonly typing = new Map<Uuid, { name: string; timer: ReturnType<typeof setTimeout> }>();
  readonly receipts = new Map<Uuid, Receipt>();
  participants: Uuid[] = [];
  deliverTimer?: ReturnType<typeof setTimeout>;
  /** The view as last built; undefined once anything changed (rebuilt on demand). */
  cached?: SessionView;

  constructor(readonly id: Uuid) {}

  get newest(): ChatMessage | undefined {
    return this.ordered[this.ordered.length - 1];
  }

  get oldest(): ChatMessage | undefined {
    return this.ordered[0];
  }

  /** Add a message unless it is already held (by id); true when it was added. */
  add(m: ChatMessage): boolean {
    if (this.byId.has(m.id)) return false;
    this.byId.set(m.id, m);
    insertSorted(this.ordered, m);
    return true;
  }

  /** A message changed in place (edited, deleted, redacted); false when it is not held. */
  patch(messageId: Uuid, change: Partial<ChatMessage>): boolean {
    const old = this.byId.get(messageId);
    if (!old) return false;
    const next = { ...old, ...change };
    this.byId.set(messageId, next);
    this.ordered = this.ordered.map((m) => (m.id === messageId ? next : m));
    return true;
  }

  /** A participant's account was deleted: their messages become what the service now
   *  holds (tombstones, anonymous, or gone), so the thread matches a reload. */
  erase(e: UserErasedEvent): void {
    this.participants = this.participants.filter((u) => u !== e.user_id);
    this.online.delete(e.user_id);
    this.typing.delete(e.user_id);
    this.receipts.delete(e.user_id);
    const theirs = this.ordered.filter((m) => m.sender_id === e.user_id && m.type !== 'system');
    for (const m of theirs) {
      if (e.mode === 'delete') {
        this.byId.delete(m.id);
        continue;
      }
      const gone: ChatMessage =
        e.mode === 'redact'
          ? { ...m, sender_id: null, sender_name: DELETED_USER, content: null, metadata: {},
              client_message_id: null, deleted: true }
          : { ...m, sender_id: null, sender_name: DELETED_USER };
      this.byId.set(m.id, gone);
    }
    this.ordered = this.ordered
      .filter((m) => this.byId.has(m.id))
      .map((m) => this.byId.get(m.id) ?? m);
  }

  /** Stop showing a typer (and forget their timer). */
  stopTyping(userId: Uuid): void {
    const t = this.typing.get(userId);
    if (!t) return;
    clearTimeout(t.timer);
    this.typing.delete(userId);
  }

  /** A receipt event about a message held: the reader's cursors move forward only. */
  advanceReceipt(userId: Uuid, m: ChatMessage, kind: 'read' | 'delivered'): void {
    const r = this.receipts.get(userId) ?? {};
    const pos = positionOf(m);
    if (kind === 'read') r.read = later(r.read, pos);
    r.delivered = later(r.delivered, pos);
    this.receipts.set(userId, r);
  }

  /** The connection dropped: nobody is known to be online or typing any more. */
  clearLive(): void {
    this.online.clear();
    for (const t of this.typing.values()) clearTimeout(t.timer);
    this.typing.clear();
    this.cached = undefined;
  }

  /** The client is closing: no timer of this session may fire. */
  dispose(): void {
    clearTimeout(this.deliverTimer);
    for (const t of this.typing.values()) clearTimeout(t.timer);
  }

  /** The thread as shown: stored messages oldest first, then the given pending ones.
   *  Stable between changes (same object), so React can compare it. */
  view(pending: () => ThreadMessage[]): SessionView {
    if (this.cached) return this.cached;
    const queued = pending();
    this.cached = {
      id: this.id,
      messages: queued.length ? [...this.ordered, ...queued] : this.ordered.slice(),
      hasOlder: this.hasOlder,
      online: [...this.online],
      typing: [...this.typing].map(([user_id, t]) => ({ user_id, user_name: t.name })),
      participants: this.participants,
    };
    return this.cached;
  }

  /** sent, delivered (every other participant's device has it) or read (every other
   *  participant read it), for a stored message of `me`. */
  status(m: ChatMessage, me: Uuid): DeliveryStatus {
    const others = this.participants.filter((p) => p !== me);
    if (!others.length) return 'sent';
    const pos = positionOf(m);
    const reached = (k: keyof Receipt) =>
      others.every((u) => {
        const r = this.receipts.get(u)?.[k];
        return r !== undefined && compare(r, pos) >= 0;
      });
    if (reached('read')) return 'read';
    if (reached('delivered')) return 'delivered';
    return 'sent';
  }
}

function insertSorted(list: ChatMessage[], m: ChatMessage): void {
  const pos = positionOf(m);
  let i = list.length;
  while (i > 0 && compare(positionOf(list[i - 1]), pos) > 0) i--;
  list.splice(i, 0, m);
}
