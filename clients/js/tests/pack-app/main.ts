// A host app's first use of the installed package (tests/pack.sh): both entry points
// resolve, with their types; a client is made and used offline, never connecting.
import {
  ApiError,
  ChatApi,
  ChatClient,
  DELETED_USER,
  decodeToken,
  nameOf,
  roleOf,
  toInfo,
  type ChatMessage,
  type ChatClientOptions,
  type DeliveryStatus,
  type SessionView,
} from '@consult-chat/client';
import { useClientVersion, useUnifiedChat, type UnifiedChat } from '@consult-chat/client/react';

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`pack check failed: ${what}`);
}

const b64url = (s: string) => btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const exp = Math.floor(Date.now() / 1000) + 3600;
const token = [
  b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' })),
  b64url(JSON.stringify({ sub: '11111111-1111-4111-8111-111111111111', exp, app_metadata: { role: 'reader' },
    user_metadata: { full_name: 'Pack Check' } })),
  'signature',
].join('.');

const options: ChatClientOptions = { url: 'http://127.0.0.1:9', token, transports: ['websocket'] };
const client = new ChatClient(options);
check(!client.connected, 'a new client is not connected');
check(client.userId === '11111111-1111-4111-8111-111111111111', 'userId from the token');
check(client.role === 'reader' && !client.isAdmin, 'role from the token');
check(client.userName === 'Pack Check', 'name from the token');
check(client.api instanceof ChatApi, 'the REST API');
check(roleOf(decodeToken(token)) === 'reader' && nameOf(decodeToken(token)) === 'Pack Check', 'token helpers');

let changes = 0;
const off = client.on('change', () => changes++);
const { clientMessageId, done } = client.send('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', { content: 'queued offline' });
check(typeof clientMessageId === 'string' && clientMessageId.length > 0, 'a client_message_id');
check(client.pendingCount === 1 && changes === 1, 'the send waits in the outbox');
const view: SessionView | undefined = client.view('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa');
check(view === undefined, 'no view of a session not opened');
client.discard(clientMessageId);
const discarded = await done.then(
  (m: ChatMessage) => m.id,
  (e: unknown) => toInfo(e).code,
);
check(discarded === 'discarded' && client.pendingCount === 0, 'a discarded send');
off();
client.close();

check(new ApiError(404, { code: 'not_found', message: 'gone' }).code === 'not_found', 'ApiError');
check(DELETED_USER === 'Deleted user', 'DELETED_USER');
const status: DeliveryStatus | undefined = client.statusOf({ ...({} as ChatMessage), sender_id: null });
check(status === undefined, "others' messages have no status");
check(typeof useUnifiedChat === 'function' && typeof useClientVersion === 'function', 'the React hooks');
type Hook = Pick<UnifiedChat, 'sendMessage' | 'messages' | 'isConnected'>;
const shape: (keyof Hook)[] = ['sendMessage', 'messages', 'isConnected'];
console.log(`the installed package works: ${shape.length} hook fields typed, client constructed and closed offline`);
