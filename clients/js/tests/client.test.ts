// The typed client against the real service (started here): catch-up, dedupe, the
// outbox across a dropped connection and a relay restart, token refresh, receipts, typing.
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { ChatClient, type ChatMessage } from '../src/index.js';
import { DEMO, Service } from './service.js';

let svc: Service;
const clients: ChatClient[] = [];

beforeAll(async () => {
  svc = await Service.start({ template: inject('template') });
});
afterAll(async () => {
  await svc?.stop();
});
afterEach(() => {
  while (clients.length) clients.pop()!.close();
});

function client(user: string, opts: Partial<ConstructorParameters<typeof ChatClient>[0]> = {}): ChatClient {
  const c = new ChatClient({ url: svc.url, token: svc.token(user, 'client'), ackTimeoutMs: 3000, ...opts });
  clients.push(c);
  return c;
}

async function until<T>(fn: () => T | undefined | false, what: string, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function texts(c: ChatClient, session: string = DEMO.session): string[] {
  return (c.view(session)?.messages ?? []).filter((m) => !m.pending).map((m) => m.content ?? '');
}

function storedCount(clientMessageId: string): number {
  return Number(svc.sql(`select count(*) from public.chat_messages where client_message_id = '${clientMessageId}'`).trim());
}

async function connected(c: ChatClient, session: string = DEMO.session): Promise<void> {
  c.connect();
  await until(() => c.connected, 'connection');
  await c.open(session);
}

describe('ChatClient', () => {
  it('receives live messages once, in order, and catches up after a reconnect', async () => {
    const a = client(DEMO.client);
    const b = client(DEMO.reader);
    await connected(a);
    await connected(b);
    await b.send(DEMO.session, { content: 'live one' }).done;
    await until(() => texts(a).includes('live one'), 'live message');

    // A's transport drops; B keeps talking; A reconnects and rejoins with last_message_id.
    a.socket.io.engine.close();
    await until(() => !a.connected, 'disconnect');
    for (const n of [1, 2, 3]) await b.send(DEMO.session, { content: `missed ${n}` }).done;
    await until(() => texts(a).includes('missed 3'), 'catch-up', 15_000);
    const seen = texts(a);
    expect(seen.filter((t) => t.startsWith('missed'))).toEqual(['missed 1', 'missed 2', 'missed 3']);
    const ids = a.view(DEMO.session)!.messages.map((m) => m.id);
    expect(new Set(ids).size).toBe(ids.length); // deduped by id
    const seqs = a.view(DEMO.session)!.messages.map((m) => m.seq);
    expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
  });

  it('sends what was queued while offline, and a send cut mid-flight, exactly once', async () => {
    const a = client(DEMO.client);
    await connected(a);
    a.socket.io.engine.close(); // offline
    await until(() => !a.connected, 'disconnect');
    const queued = a.send(DEMO.session, { content: 'queued while offline' });
    expect(a.statusOf(a.view(DEMO.session)!.messages.at(-1)!)).toBe('sending');
    const stored = await queued.done;
    expect(stored.client_message_id).toBe(queued.clientMessageId);
    expect(storedCount(queued.clientMessageId)).toBe(1);

    // Mid-send: the packet leaves, the transport drops before the ack can come back.
    const cut = a.send(DEMO.session, { content: 'cut mid-send' });
    a.socket.io.engine.close();
    const m = await cut.done;
    expect(m.content).toBe('cut mid-send');
    await new Promise((r) => setTimeout(r, 500));
    expect(storedCount(cut.clientMessageId)).toBe(1);
    expect(texts(a).filter((t) => t === 'cut mid-send')).toHaveLength(1);
    expect(a.pendingCount).toBe(0);
  });

  it('refuses a send with a final error without retrying it forever', async () => {
    const a = client(DEMO.client);
    await connected(a);
    const bad = a.send(DEMO.session, { content: 'x'.repeat(10_001) });
    await expect(bad.done).rejects.toMatchObject({ code: 'invalid_value' });
    const failed = a.view(DEMO.session)!.messages.find((m) => m.client_message_id === bad.clientMessageId)!;
    expect(a.statusOf(failed)).toBe('failed');
    expect(storedCount(bad.clientMessageId)).toBe(0);
  });

  it('survives a relay restart: rejoins, catches up and delivers its outbox', async () => {
    const a = client(DEMO.client);
    const b = client(DEMO.reader);
    await connected(a);
    await connected(b);
    await svc.halt();
    await until(() => !a.connected && !b.connected, 'relay down');
    const during = a.send(DEMO.session, { content: 'sent during the restart' });
    // Written by someone else while the relay is away (psql, as supabase-js would).
    svc.sql(
      `insert into public.chat_messages (session_id, sender_id, content) values ('${DEMO.session}', '${DEMO.reader}', 'written while the relay was down')`,
    );
    await svc.boot();
    const m = await during.done;
    expect(storedCount(during.clientMessageId)).toBe(1);
    await until(() => texts(a).includes('written while the relay was down'), 'catch-up after restart', 20_000);
    await until(() => texts(b).includes(m.content!), 'B sees the queued message', 20_000);
    expect(texts(b).filter((t) => t === 'sent during the restart')).toHaveLength(1);
  });

  it('refreshes its token before expiry and keeps the connection', async () => {
    let calls = 0;
    const a = client(DEMO.client, {
      token: svc.token(DEMO.client, 'client', 'Demo Client', 4),
      refreshToken: async () => {
        calls++;
        return svc.token(DEMO.client, 'client', 'Demo Client', 3600);
      },
    });
    await connected(a);
    const socketId = a.socket.id;
    await new Promise((r) => setTimeout(r, 5500)); // past the first token's expiry
    expect(calls).toBeGreaterThanOrEqual(1);
    expect(a.connected).toBe(true);
    expect(a.socket.id).toBe(socketId); // never kicked
    const m = await a.send(DEMO.session, { content: 'after refresh' }).done;
    expect(m.sender_id).toBe(DEMO.client);
  });

  it('connects after an expired token is refused, with a fresh one from the callback', async () => {
    let calls = 0;
    const a = client(DEMO.client, {
      token: svc.token(DEMO.client, 'client', 'Demo Client', -10),
      refreshToken: async () => {
        calls++;
        return svc.token(DEMO.client, 'client', 'Demo Client', 3600);
      },
    });
    a.connect();
    await until(() => a.connected, 'connection after refresh');
    expect(calls).toBeGreaterThanOrEqual(1);
  });

  it('shows my message as sent, delivered when it reaches the reader, read when read', async () => {
    const a = client(DEMO.client);
    const b = client(DEMO.reader, { autoDeliver: false });
    await connected(a);
    const m: ChatMessage = await a.send(DEMO.session, { content: 'status please' }).done;
    const find = () => a.view(DEMO.session)!.messages.find((x) => x.id === m.id)!;
    expect(a.statusOf(find())).toBe('sent');
    const c = client(DEMO.reader); // a device of the reader that acknowledges delivery
    await connected(c);
    await until(() => a.statusOf(find()) === 'delivered' && true, 'delivered');
    await connected(b);
    await b.markRead(DEMO.session);
    await until(() => a.statusOf(find()) === 'read' && true, 'read');
  });

  it('throttles typing to the server coalescing and shows it to the other side', async () => {
    const a = client(DEMO.client);
    const b = client(DEMO.reader);
    await connected(a);
    await connected(b);
    let starts = 0;
    const orig = a.socket.emit.bind(a.socket);
    a.socket.emit = ((ev: string, ...args: unknown[]) => {
      if (ev === 'typing_start') starts++;
      return (orig as (...x: unknown[]) => unknown)(ev, ...args);
    }) as typeof a.socket.emit;
    const t0 = Date.now();
    while (Date.now() - t0 < 1500) {
      a.typing(DEMO.session);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(starts).toBe(2);
    await until(() => b.view(DEMO.session)!.typing.some((t) => t.user_id === DEMO.client), 'typing shown');
    a.stopTyping(DEMO.session);
    await until(() => b.view(DEMO.session)!.typing.length === 0, 'typing cleared');
  });

  it('pages back through history by keyset and searches with highlights', async () => {
    const a = client(DEMO.client);
    svc.sql(
      `insert into public.chat_messages (session_id, sender_id, content, created_at)
       select '${DEMO.session}', '${DEMO.client}', 'history line ' || g, now() - interval '1 day' + g * interval '1 second'
       from generate_series(1, 120) g`,
    );
    await connected(a);
    while (a.view(DEMO.session)!.hasOlder) await a.loadOlder(DEMO.session);
    const all = texts(a);
    expect(all.filter((t) => t.startsWith('history line'))).toHaveLength(120);
    expect(all[0]).toBe('history line 1');
    const found = await a.api.search('line 7', { session_id: DEMO.session, limit: 5 });
    expect(found.results.length).toBeGreaterThan(0);
    expect(found.results[0].snippet).toContain('<mark>');
    const outsider = new ChatClient({ url: svc.url, token: svc.token(DEMO.outsider) });
    expect((await outsider.api.search('history')).results).toHaveLength(0);
  });

  it('shows a deleted participant\'s messages as tombstones of a "Deleted user", live and after a reload', async () => {
    const leaving = 'dddddddd-dddd-4ddd-8ddd-dddddddddddd';
    const session = 'eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee';
    svc.sql(`insert into auth.users (id, email, raw_app_meta_data, raw_user_meta_data)
      values ('${leaving}', 'leaving@example.test', '{"role": "client"}', '{"full_name": "Lea Leaving"}');
      insert into public.chat_sessions (id, participants, type, created_by)
      values ('${session}', array['${leaving}', '${DEMO.reader}']::uuid[], 'support', '${leaving}')`);
    const gone = new ChatClient({ url: svc.url, token: svc.token(leaving, 'client'), ackTimeoutMs: 3000 });
    clients.push(gone);
    const reader = client(DEMO.reader);
    await connected(gone, session);
    await connected(reader, session);
    await gone.send(session, { content: 'my phone is 555 0101' }).done;
    await until(() => texts(reader, session).includes('my phone is 555 0101'), 'the message');
    const erased: string[] = [];
    reader.on('user_erased', (e) => erased.push(e.user_id));
    const told: string[] = [];
    gone.on('error', (e) => told.push(e.code));

    svc.sql(`delete from auth.users where id = '${leaving}'`); // as Supabase Auth's admin API does

    await until(() => erased.length > 0, 'user_erased');
    const live = reader.view(session)!.messages.filter((m) => !m.pending && m.type !== 'system');
    expect(live.map((m) => [m.sender_name, m.content, m.deleted])).toEqual([['Deleted user', null, true]]);
    await until(() => told.includes('user_erased'), 'the deleted user told');

    const fresh = client(DEMO.reader);
    await connected(fresh, session);
    const reloaded = fresh.view(session)!.messages.filter((m) => m.type !== 'system');
    expect(reloaded.map((m) => [m.sender_name, m.content, m.deleted])).toEqual([['Deleted user', null, true]]);
  });
});
