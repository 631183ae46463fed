// The wire contract of the chat service (docs/protocol.md and docs/api.md),
// as TypeScript types. Timestamps are ISO 8601 strings in UTC.

export type Uuid = string;
export type SessionType = 'booking' | 'support' | 'emergency';
export type SessionStatus = 'active' | 'closed';
export type MessageType = 'text' | 'audio' | 'image' | 'file' | 'system';
export type AppRole = 'client' | 'reader' | 'admin' | 'super_admin';

export interface FileMetadata {
  file_name?: string;
  mime_type?: string;
  size_bytes?: number;
  storage_path?: string;
  duration_ms?: number;
  width?: number;
  height?: number;
  /** A short-lived signed URL (no header needed), added by the service. */
  url?: string;
  [key: string]: unknown;
}

/** `new_message`, and every message of the REST API. */
export interface ChatMessage {
  id: Uuid;
  session_id: Uuid;
  sender_id: Uuid | null;
  sender_name: string | null;
  type: MessageType;
  content: string | null;
  reply_to_message_id: Uuid | null;
  metadata: FileMetadata;
  client_message_id: string | null;
  created_at: string;
  seq: number;
  /** A tombstone: the message keeps its place, without content or file. */
  deleted?: boolean;
  /** Why: erased (the sender's account was deleted; sender_name "Deleted user"), sender
   * (they deleted it), moderator (an admin removed it). */
  deleted_reason?: 'erased' | 'sender' | 'moderator' | null;
  /** When the sender last edited it. */
  edited_at?: string | null;
}

/** What deleting a user did to their messages in the sessions others keep. */
export type ErasureMode = 'redact' | 'retain' | 'delete';

export interface LastMessage {
  id: Uuid;
  sender_id: Uuid | null;
  type: MessageType;
  content: string | null;
  created_at: string;
}

export interface ChatSession {
  id: Uuid;
  participants: Uuid[];
  type: SessionType;
  booking_id: Uuid | null;
  status: SessionStatus;
  title: string | null;
  last_message_at: string | null;
  unread_count: number;
  bookings: { service_name: string | null } | null;
  created_by: Uuid | null;
  created_at: string;
  updated_at: string;
  closed_at: string | null;
  last_message: LastMessage | null;
}

export interface Cursor {
  message_id: Uuid;
  created_at: string;
  seq: number;
}

export interface ParticipantReceipt {
  user_id: Uuid;
  delivered: Cursor | null;
  read: Cursor | null;
}

export interface SearchHit {
  message: ChatMessage;
  rank: number;
  /** HTML-escaped text with each hit in <mark>...</mark>. */
  snippet: string;
}

export interface ErrorInfo {
  code: string;
  message: string;
  event?: string;
}

// ------------------------------------------------------------------ events the relay sends
export interface SessionJoinedEvent {
  session_id: Uuid;
  participants_online: Uuid[];
}
export interface PersonEvent {
  user_id: Uuid;
  user_name: string;
  timestamp: string;
  session_id: Uuid;
}
export interface MessagesReadEvent {
  user_id: Uuid;
  user_name: string;
  up_to_message_id: Uuid;
  read_count: number;
  timestamp: string;
  session_id: Uuid;
}
export interface MessagesDeliveredEvent {
  user_id: Uuid;
  up_to_message_id: Uuid;
  session_id: Uuid;
  timestamp: string;
}
export interface OnlineUsersEvent {
  session_id: Uuid;
  users: Uuid[];
  count: number;
}
export interface SessionUpdatedEvent {
  session_id: Uuid;
  status: SessionStatus;
  timestamp: string;
}

/** A participant's account was deleted (one event per session they left). */
export interface UserErasedEvent {
  user_id: Uuid;
  session_id: Uuid;
  mode: ErasureMode;
  timestamp: string;
}

export interface MessageUpdatedEvent {
  session_id: Uuid;
  message_id: Uuid;
  content: string | null;
  edited_at: string | null;
}
export interface MessageDeletedEvent {
  session_id: Uuid;
  message_id: Uuid;
  deleted_at: string;
  reason: 'erased' | 'sender' | 'moderator';
}

export interface ServerToClientEvents {
  session_joined: (e: SessionJoinedEvent) => void;
  user_joined: (e: PersonEvent) => void;
  user_left: (e: PersonEvent) => void;
  new_message: (e: ChatMessage) => void;
  messages_read: (e: MessagesReadEvent) => void;
  messages_delivered: (e: MessagesDeliveredEvent) => void;
  user_typing: (e: PersonEvent) => void;
  user_stopped_typing: (e: PersonEvent) => void;
  online_users: (e: OnlineUsersEvent) => void;
  session_updated: (e: SessionUpdatedEvent) => void;
  user_erased: (e: UserErasedEvent) => void;
  message_updated: (e: MessageUpdatedEvent) => void;
  message_deleted: (e: MessageDeletedEvent) => void;
  error: (e: ErrorInfo) => void;
}

// ------------------------------------------------------------------ events the client sends
export type Ack<T = Record<string, unknown>> =
  | ({ ok: true } & T)
  | { ok: false; error: ErrorInfo };

export interface SendMessagePayload {
  session_id: Uuid;
  type?: Exclude<MessageType, 'system'>;
  content?: string | null;
  reply_to_message_id?: Uuid | null;
  metadata?: Record<string, unknown>;
  client_message_id?: string;
}

export interface ClientToServerEvents {
  join_session: (
    p: { session_id: Uuid; last_message_id?: Uuid },
    ack: (a: Ack<SessionJoinedEvent & { missed: number }>) => void,
  ) => void;
  leave_session: (p: { session_id: Uuid }, ack: (a: Ack) => void) => void;
  send_message: (p: SendMessagePayload, ack: (a: Ack<{ message: ChatMessage }>) => void) => void;
  mark_messages_read: (
    p: { session_id: Uuid; up_to_message_id?: Uuid },
    ack: (a: Ack<{ read_count: number }>) => void,
  ) => void;
  messages_delivered: (
    p: { session_id: Uuid; up_to_message_id?: Uuid },
    ack: (a: Ack<{ moved: boolean }>) => void,
  ) => void;
  typing_start: (p: { session_id: Uuid }, ack: (a: Ack) => void) => void;
  typing_stop: (p: { session_id: Uuid }, ack: (a: Ack) => void) => void;
  get_online_users: (p: { session_id: Uuid }, ack: (a: Ack<OnlineUsersEvent>) => void) => void;
  refresh_token: (p: { token: string }, ack: (a: Ack<{ expires_at: number }>) => void) => void;
}

// ------------------------------------------------------------------ moderation
export type ReportCategory = 'spam' | 'harassment' | 'off_platform_contact' | 'inappropriate' | 'other';

/** A report of a message; in the admin queue it also carries the message's current state. */
export interface Report {
  id: Uuid;
  session_id: Uuid;
  message_id: Uuid;
  reporter_id: Uuid | null;
  category: ReportCategory;
  note: string | null;
  status: 'open' | 'resolved';
  action: 'dismiss' | 'redact' | 'suspend' | null;
  resolution_note: string | null;
  resolved_by: Uuid | null;
  resolved_at: string | null;
  created_at: string;
  message?: { sender_id: Uuid | null; type: MessageType; content: string | null; created_at: string; deleted: boolean };
}
