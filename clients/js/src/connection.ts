// The connection: the Socket.IO socket's life (connect, close, reconnect with backoff when
// the server closed it or refused it, the browser's online/offline events) and the access
// token it presents (refreshed before it expires and handed to the relay without a
// reconnect). What the connection means for sessions and the outbox is the client's.
import { io, type Socket } from 'socket.io-client';
import { decodeToken, type TokenClaims } from './tokens.js';
import type { ClientToServerEvents, ErrorInfo, ServerToClientEvents } from './types.js';

export type ChatSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export interface ConnectionOptions {
  url: string;
  token: string;
  refreshToken?: () => Promise<string>;
  transports: ('websocket' | 'polling')[];
  ackTimeoutMs: number;
}

export interface ConnectionHooks {
  /** The socket connected (first time or again). */
  connected(): void;
  /** The socket disconnected, for this reason (socket.io's). */
  disconnected(reason: string): void;
  /** An error to report: from the relay's `error` event, or a token refresh. */
  error(e: ErrorInfo): void;
}

export class Connection {
  readonly socket: ChatSocket;
  private currentToken: string;
  private currentClaims: TokenClaims;
  private closed = false;
  private refreshTimer?: ReturnType<typeof setTimeout>;
  private reconnectTimer?: ReturnType<typeof setTimeout>;
  private refreshing?: Promise<void>;
  private retryDelay = 500;
  private watchingNetwork = false;

  constructor(
    private readonly opts: ConnectionOptions,
    private readonly hooks: ConnectionHooks,
  ) {
    this.currentToken = opts.token;
    this.currentClaims = decodeToken(opts.token);
    this.socket = io(opts.url, {
      autoConnect: false,
      transports: opts.transports,
      // A function: every (re)connection presents the current token.
      auth: (cb) => cb({ token: this.currentToken }),
      reconnection: true,
      reconnectionDelay: 300,
      reconnectionDelayMax: 3000,
    });
    this.wire();
  }

  get token(): string {
    return this.currentToken;
  }

  get claims(): TokenClaims {
    return this.currentClaims;
  }

  get connected(): boolean {
    return this.socket.connected;
  }

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
      this.hooks.connected();
    });
    s.on('disconnect', (reason) => {
      this.hooks.disconnected(reason);
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
      this.hooks.error(e);
    });
  }

  private reconnectSoon(): void {
    clearTimeout(this.reconnectTimer);
    const delay = this.retryDelay * (0.75 + Math.random() / 2);
    this.retryDelay = Math.min(this.retryDelay * 2, 5000);
    this.reconnectTimer = setTimeout(() => {
      if (!this.closed && !this.socket.connected) this.socket.connect();
    }, delay);
  }

  // ---------------------------------------------------------------- tokens
  private scheduleRefresh(): void {
    clearTimeout(this.refreshTimer);
    if (!this.opts.refreshToken) return;
    const lifetimeMs = this.currentClaims.exp * 1000 - Date.now();
    const margin = Math.min(60_000, Math.max(lifetimeMs / 2, 0));
    this.refreshTimer = setTimeout(
      () => void this.refresh().catch((err) => this.hooks.error({ code: 'refresh_failed', message: String(err) })),
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
        this.currentToken = token;
        this.currentClaims = claims;
        if (this.socket.connected) {
          const ack = await this.socket.timeout(this.opts.ackTimeoutMs).emitWithAck('refresh_token', { token });
          if (!ack.ok) this.hooks.error(ack.error);
        }
        this.scheduleRefresh();
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }
}
