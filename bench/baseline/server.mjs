// The comparison servers of scripts/bench, driven by the same load generator as the relay.
//
//   MODE=original  the original service's own stack: Socket.IO 4.8 + pg. Per message one transaction as
//              the user under RLS (role authenticated, request.jwt.claims, exactly as
//              PostgREST and the relay do): insert into public.chat_messages, touch
//              public.chat_sessions.last_message_at, commit; then ack and emit
//              `new_message` to the room.
//   MODE=echo  no database: ack and emit the message back to the room. Measures the load
//              generator's own ceiling.
//
// Same auth as the relay (HS256 JWT, JWT_SECRET, aud "authenticated", exp), same events
// (join_session, send_message, new_message, session_joined, error) and payload shapes.
// Env: PORT, MODE, JWT_SECRET, DATABASE_URL (original), POOL_MAX (10, the relay's DB_POOL_MAX),
// TOUCH_AS: "user" (the original service's schema lets participants update their session) or
// "service_role" (the product's schema grants users no update of last_message_at: the
// touch is done as the original service's server would, with its service role, in the same transaction).
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import pg from 'pg';
import { Server } from 'socket.io';

const PORT = Number(process.env.PORT || 0);
const MODE = process.env.MODE || 'original';
const SECRET = process.env.JWT_SECRET || '';
const TOUCH_AS = process.env.TOUCH_AS || 'user';
if (!SECRET) throw new Error('JWT_SECRET is required');
if (!['original', 'echo'].includes(MODE)) throw new Error(`MODE must be original or echo, not ${MODE}`);

const pool =
  MODE === 'original'
    ? new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.POOL_MAX || 10) })
    : null;
if (pool) pool.on('error', (err) => console.error('pool error:', err.message));

function verify(token) {
  if (typeof token !== 'string') throw new Error('missing token');
  const parts = token.split('.');
  if (parts.length !== 3) throw new Error('malformed token');
  const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
  if (header.alg !== 'HS256') throw new Error('unsupported alg');
  const want = createHmac('sha256', SECRET).update(`${parts[0]}.${parts[1]}`).digest();
  const got = Buffer.from(parts[2], 'base64url');
  if (got.length !== want.length || !timingSafeEqual(got, want)) throw new Error('bad signature');
  const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
  if (claims.aud !== 'authenticated') throw new Error('wrong audience');
  if (!(claims.exp > Date.now() / 1000)) throw new Error('token expired');
  return claims;
}

async function asUser(claims, work) {
  const client = await pool.connect();
  try {
    await client.query('begin');
    await client.query(
      "select set_config('role', 'authenticated', true), set_config('request.jwt.claims', $1, true)",
      [JSON.stringify(claims)],
    );
    const result = await work(client);
    await client.query('commit');
    return result;
  } catch (err) {
    await client.query('rollback').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

function fail(socket, ack, event, code, message) {
  const body = { code, message, event };
  socket.emit('error', body);
  if (typeof ack === 'function') ack({ ok: false, error: body });
}

const INSERT = `insert into public.chat_messages
  (session_id, sender_id, type, content, reply_to_message_id, metadata, client_message_id)
values ($1, $2, $3, $4, $5, $6, $7)
returning id, session_id, sender_id, type, content, reply_to_message_id, metadata,
  client_message_id, created_at`;
const TOUCH = 'update public.chat_sessions set last_message_at = $2, updated_at = now() where id = $1';

async function store(claims, data) {
  return asUser(claims, async (client) => {
    const { rows } = await client.query(INSERT, [
      data.session_id,
      claims.sub,
      data.type || 'text',
      data.content ?? null,
      data.reply_to_message_id ?? null,
      data.metadata ?? {},
      data.client_message_id ?? null,
    ]);
    if (rows.length !== 1) throw Object.assign(new Error('not stored'), { code: 'not_found' });
    if (TOUCH_AS === 'service_role') await client.query("select set_config('role', 'service_role', true)");
    await client.query(TOUCH, [data.session_id, rows[0].created_at]);
    return rows[0];
  });
}

function payload(row, name) {
  return {
    id: row.id,
    session_id: row.session_id,
    sender_id: row.sender_id,
    sender_name: name,
    type: row.type,
    content: row.content,
    reply_to_message_id: row.reply_to_message_id,
    metadata: row.metadata,
    client_message_id: row.client_message_id,
    created_at: new Date(row.created_at).toISOString(),
    seq: null,
  };
}

const http = createServer((req, res) => {
  const ok = req.url === '/health';
  res.writeHead(ok ? 200 : 404, { 'content-type': 'application/json' });
  res.end(ok ? JSON.stringify({ status: 'healthy', mode: MODE }) : '{}');
});
const io = new Server(http, { serveClient: false, cors: { origin: '*' } });

io.use((socket, next) => {
  try {
    const claims = verify(socket.handshake.auth?.token);
    socket.data.claims = claims;
    socket.data.name = claims.user_metadata?.full_name || String(claims.email || '').split('@')[0] || 'user';
    next();
  } catch (err) {
    next(Object.assign(new Error(err.message), { data: { code: 'invalid_token' } }));
  }
});

io.on('connection', (socket) => {
  const { claims, name } = socket.data;

  socket.on('join_session', async (data, ack) => {
    const sessionId = data?.session_id;
    if (typeof sessionId !== 'string') return fail(socket, ack, 'join_session', 'invalid_payload', 'session_id is required');
    try {
      if (pool) {
        const found = await asUser(claims, (c) =>
          c.query('select 1 from public.chat_sessions where id = $1', [sessionId]).then((r) => r.rowCount),
        );
        if (!found) return fail(socket, ack, 'join_session', 'not_found', 'no such session');
      }
      socket.join(sessionId);
      const joined = { session_id: sessionId, participants_online: [] };
      socket.emit('session_joined', joined);
      if (typeof ack === 'function') ack({ ok: true, ...joined });
    } catch (err) {
      fail(socket, ack, 'join_session', 'unavailable', err.message);
    }
  });

  socket.on('send_message', async (data, ack) => {
    if (typeof data?.session_id !== 'string' || !socket.rooms.has(data.session_id)) {
      return fail(socket, ack, 'send_message', 'not_found', 'join the session first');
    }
    try {
      const row = pool
        ? await store(claims, data)
        : {
            id: randomUUID(),
            session_id: data.session_id,
            sender_id: claims.sub,
            type: data.type || 'text',
            content: data.content ?? null,
            reply_to_message_id: null,
            metadata: data.metadata ?? {},
            client_message_id: data.client_message_id ?? null,
            created_at: Date.now(),
          };
      const message = payload(row, name);
      if (typeof ack === 'function') ack({ ok: true, message });
      io.to(data.session_id).emit('new_message', message);
    } catch (err) {
      fail(socket, ack, 'send_message', err.code === 'not_found' ? 'not_found' : 'unavailable', err.message);
    }
  });
});

http.listen(PORT, '127.0.0.1', () => {
  console.log(`baseline (${MODE}) listening on http://127.0.0.1:${http.address().port}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    io.close();
    (pool ? pool.end() : Promise.resolve()).finally(() => process.exit(0));
  });
}
