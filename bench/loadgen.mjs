// The load generator of scripts/bench: the official socket.io-client, websocket transport,
// one connection per simulated user (forceNew), two users per session.
//
//   node bench/loadgen.mjs CONFIG.json
//
// CONFIG: {url, secret, pairs: [[session_id, user_a, user_b], ...], pg_url?, pg_pool?,
//          connect_concurrency?}
// Commands arrive on stdin, one JSON object a line; each answer is one JSON line on stdout:
//   {"cmd": "connect", "from": 0, "to": N}  connect clients [from, to) and join their session
//   {"cmd": "step", "rate": R, "seconds": S, "drain": D, "writer": "socket"|"sql", "tag": T}
//        offer R messages/s for S seconds, round robin over every joined client, then wait
//        up to D seconds for the rest. writer "socket": send_message with a client_message_id;
//        "sql": an insert through SQL as the user (role authenticated + request.jwt.claims,
//        as PostgREST does for supabase-js). Latency: from the send to `new_message` at the
//        OTHER participant of the session.
//   {"cmd": "close"}
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay, performance, PerformanceObserver } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { io } from 'socket.io-client';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const out = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

function mint(user) {
  const now = Math.floor(Date.now() / 1000);
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = part({ alg: 'HS256', typ: 'JWT' });
  const body = part({
    iss: 'http://127.0.0.1:54321/auth/v1',
    aud: 'authenticated',
    sub: user,
    role: 'authenticated',
    iat: now,
    exp: now + 6 * 3600,
    email: `bench-${user.slice(0, 8)}@bench.test`,
    aal: 'aal1',
    is_anonymous: false,
    app_metadata: { provider: 'email', role: 'client' },
    user_metadata: {},
  });
  const sig = createHmac('sha256', cfg.secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

const clients = [];
for (const [session, a, b] of cfg.pairs) {
  clients.push({ session, user: a, joined: false });
  clients.push({ session, user: b, joined: false });
}

// The generator's own stalls, per step: its event loop's longest delay and its longest
// garbage collection. A latency spike that coincides with one is the generator's, not the
// server's.
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
let gcMaxMs = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) gcMaxMs = Math.max(gcMaxMs, entry.duration);
}).observe({ entryTypes: ['gc'] });

// Per-step state.
let pending = new Map(); // client_message_id -> send time (ms)
let latencies = [];
let writes = []; // SQL writer: send to commit acknowledged (ms)
let lastDelivery = 0;
let counts = {};
let closing = false;
const resetCounts = () => {
  counts = { ack_errors: 0, error_events: 0, disconnects: 0, foreign_echoes: 0, send_errors: 0 };
};
resetCounts();

// Every message's text. No digits: the product's contact filter (on by default) would
// read a run of digits as a phone number and report the message, which no ordinary chat
// message costs, and only in the runs whose random tags happen to hold such a run.
const CONTENT = 'Hello, this is the load generator speaking; nothing to report here.';

function onMessage(c, m) {
  if (m.sender_id === c.user) return; // the sender's own copy
  const t0 = pending.get(m.client_message_id);
  if (t0 === undefined) {
    counts.foreign_echoes++; // late (a previous step) or a repeat
    return;
  }
  const now = performance.now();
  pending.delete(m.client_message_id);
  latencies.push(now - t0);
  lastDelivery = now;
}

function connectOne(c) {
  return new Promise((resolve) => {
    const sock = io(cfg.url, {
      transports: ['websocket'],
      auth: { token: mint(c.user) },
      reconnection: false,
      forceNew: true,
      timeout: 60000,
    });
    c.sock = sock;
    const timer = setTimeout(() => resolve('timeout'), 90000);
    sock.on('connect', () => {
      sock.emit('join_session', { session_id: c.session }, (ack) => {
        clearTimeout(timer);
        c.joined = Boolean(ack && ack.ok);
        resolve(c.joined ? 'ok' : `join refused: ${ack?.error?.code}`);
      });
    });
    sock.on('connect_error', (err) => {
      clearTimeout(timer);
      resolve(`connect_error: ${err.message}`);
    });
    sock.on('new_message', (m) => onMessage(c, m));
    sock.on('error', () => counts.error_events++);
    sock.on('disconnect', () => {
      c.joined = false;
      if (!closing) counts.disconnects++;
    });
  });
}

async function connect({ from = 0, to = clients.length }) {
  const started = performance.now();
  const todo = clients.slice(from, Math.min(to, clients.length));
  const failures = {};
  let ok = 0;
  let next = 0;
  const worker = async () => {
    while (next < todo.length) {
      const r = await connectOne(todo[next++]);
      if (r === 'ok') ok++;
      else failures[r] = (failures[r] || 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: cfg.connect_concurrency || 50 }, worker));
  out({ event: 'connected', requested: todo.length, ok, failures, seconds: (performance.now() - started) / 1000 });
}

let sqlPool = null;
// One round trip, as PostgREST sends it: claims and role set transaction-locally, then
// the insert under RLS. Every value is a uuid or generated ASCII, safe to inline.
function insertText(c, cmid) {
  const claims = JSON.stringify({ sub: c.user, role: 'authenticated', aud: 'authenticated', app_metadata: { role: 'client' } });
  return (
    `begin; select set_config('role', 'authenticated', true), set_config('request.jwt.claims', '${claims}', true); ` +
    `insert into public.chat_messages (session_id, sender_id, type, content, client_message_id) ` +
    `values ('${c.session}', '${c.user}', 'text', '${CONTENT}', '${cmid}'); commit;`
  );
}

// The writers' pool, opened whole and warmed before the first step, and never closed while
// idle: PostgREST keeps its connections, so a new backend's first statements (catalog
// caches, PL/pgSQL compiled, plans made) are not what its users wait for. pg.Pool would
// otherwise open connections as the rate first needs them, in the middle of a step, and
// close them after 10 s idle between steps.
async function openSqlPool(senders) {
  const size = cfg.pg_pool || 16;
  sqlPool = new pg.Pool({ connectionString: cfg.pg_url, max: size, idleTimeoutMillis: 0 });
  sqlPool.on('error', () => counts.send_errors++);
  const conns = await Promise.all(Array.from({ length: size }, () => sqlPool.connect()));
  await Promise.all(
    conns.map((conn, i) => conn.query(insertText(senders[i % senders.length], `warm-${i}-${Date.now()}`))),
  );
  for (const conn of conns) conn.release();
}

function sqlSend(c, cmid) {
  const text = insertText(c, cmid);
  const started = performance.now();
  sqlPool.connect().then(
    (conn) =>
      conn.query(text).then(
        () => {
          writes.push(performance.now() - started);
          conn.release();
        },
        () => {
          counts.ack_errors++;
          conn.query('rollback').finally(() => conn.release());
        },
      ),
    () => counts.send_errors++,
  );
}

function socketSend(c, cmid) {
  c.sock.emit(
    'send_message',
    { session_id: c.session, type: 'text', content: CONTENT, client_message_id: cmid },
    (ack) => {
      if (!ack || !ack.ok) counts.ack_errors++;
    },
  );
}

function pct(sorted, q) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

async function step({ rate, seconds, drain = 5, writer = 'socket', tag = 's' }) {
  resetCounts();
  pending = new Map();
  latencies = [];
  writes = [];
  const senders = clients.filter((c) => c.joined);
  if (!senders.length) return out({ event: 'step', rate, error: 'no joined clients' });
  if (writer === 'sql' && !sqlPool) await openSqlPool(senders);
  const send = writer === 'sql' ? sqlSend : socketSend;
  const total = Math.round(rate * seconds);
  loopDelay.reset();
  gcMaxMs = 0;
  const t0 = performance.now();
  lastDelivery = t0;
  let sent = 0;
  await new Promise((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor((rate * (performance.now() - t0)) / 1000));
      while (sent < due) {
        const c = senders[sent % senders.length];
        const cmid = `${tag}-${sent}`;
        pending.set(cmid, performance.now());
        send(c, cmid);
        sent++;
      }
      if (sent >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  const sendSeconds = (performance.now() - t0) / 1000;
  const deadline = performance.now() + drain * 1000;
  while (pending.size > 0 && performance.now() < deadline) await sleep(10);
  latencies.sort((x, y) => x - y);
  writes.sort((x, y) => x - y);
  const delivered = latencies.length;
  const window = Math.max(seconds, (lastDelivery - t0) / 1000);
  out({
    event: 'step',
    rate,
    writer,
    seconds,
    sent,
    send_seconds: sendSeconds,
    delivered,
    delivered_pct: sent ? (100 * delivered) / sent : 0,
    achieved: delivered / window,
    p50_ms: pct(latencies, 0.5),
    p99_ms: pct(latencies, 0.99),
    max_ms: latencies.length ? latencies[latencies.length - 1] : null,
    write_p50_ms: pct(writes, 0.5),
    write_p99_ms: pct(writes, 0.99),
    clients: senders.length,
    loadgen_stall_ms: loopDelay.max / 1e6,
    loadgen_gc_max_ms: gcMaxMs,
    ...counts,
  });
  pending = new Map();
}

async function close() {
  closing = true;
  for (const c of clients) c.sock?.disconnect();
  if (sqlPool) await sqlPool.end().catch(() => {});
  out({ event: 'closed' });
  setTimeout(() => process.exit(0), 100);
}

const commands = { connect, step, close };
const rl = createInterface({ input: process.stdin });
let chain = Promise.resolve();
rl.on('line', (line) => {
  if (!line.trim()) return;
  const msg = JSON.parse(line);
  chain = chain.then(() => commands[msg.cmd](msg)).catch((err) => out({ event: 'error', message: String(err) }));
});
rl.on('close', () => {
  chain.then(close);
});
out({ event: 'ready', clients: clients.length });
