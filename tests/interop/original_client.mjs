// The original frontend's code path, with the official socket.io-client, against our relay.
// Usage: node original_client.mjs URL TOKEN_A TOKEN_B SESSION_ID TRANSPORT
// Prints one JSON line per received event ({who, event, data}) and a final {done: true}.
import { io } from "socket.io-client";

const [url, tokenA, tokenB, sessionId, transport] = process.argv.slice(2);
const log = (who, event, data) => console.log(JSON.stringify({ who, event, data }));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const wait = (socket, event, ms = 5000) =>
  new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timeout waiting for ${event}`)), ms);
    socket.once(event, (data) => { clearTimeout(t); resolve(data); });
  });

function connect(who, token) {
  // Exactly the original frontend's connection code; transports narrowed to the one under test first.
  const socket = io(url, {
    auth: { token },
    transports: transport === "polling" ? ["polling"] : ["websocket", "polling"],
    reconnection: true,
  });
  for (const event of [
    "session_joined", "user_joined", "user_left", "new_message", "messages_read",
    "user_typing", "user_stopped_typing", "online_users", "error",
  ]) {
    socket.on(event, (data) => log(who, event, data));
  }
  socket.on("connect_error", (err) => log(who, "connect_error", { message: err.message, data: err.data }));
  socket.on("disconnect", (reason) => log(who, "disconnect", reason));
  return socket;
}

const bad = io(url, { auth: { token: "not-a-jwt" }, transports: [transport], reconnection: false });
bad.on("connect_error", (err) => { log("bad", "connect_error", { message: err.message, data: err.data }); bad.close(); });

const a = connect("a", tokenA);
const b = connect("b", tokenB);
await Promise.all([wait(a, "connect"), wait(b, "connect")]);
log("a", "transport", a.io.engine.transport.name);

const joined = wait(a, "session_joined");
a.emit("join_session", { session_id: sessionId });
await joined;
const joinedA = wait(a, "user_joined");
const joinedB = wait(b, "session_joined");
b.emit("join_session", { session_id: sessionId });
await Promise.all([joinedA, joinedB]);

const typing = wait(b, "user_typing");
a.emit("typing_start", { session_id: sessionId });
await typing;
const stopped = wait(b, "user_stopped_typing");
a.emit("typing_stop", { session_id: sessionId });
await stopped;

const gotB = wait(b, "new_message");
a.emit("send_message", { session_id: sessionId, type: "text", content: "Hello world!" });
const message = await gotB;

const receipt = wait(a, "messages_read");
b.emit("mark_messages_read", { session_id: sessionId, up_to_message_id: message.id });
await receipt;

const online = wait(b, "online_users");
b.emit("get_online_users", { session_id: sessionId });
await online;

const refused = wait(b, "error");
b.emit("send_message", { session_id: sessionId });  // no content: an error event
await refused;

const acked = await a.timeout(5000).emitWithAck("send_message", {
  session_id: sessionId, content: "with ack", client_message_id: "interop-1",
});
log("a", "ack", acked);

const left = wait(a, "user_left");
b.emit("leave_session", { session_id: sessionId });
await left;

await sleep(100);
a.close();
b.close();
console.log(JSON.stringify({ done: true }));
process.exit(0);
