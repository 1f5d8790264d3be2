#!/usr/bin/env node
/*
 * The load generator of benchmarks/run.py: WebSocket clients (npm `ws`)
 * that keep a fixed number of echo requests in flight on every channel.
 *
 *     node benchmarks/node/loadgen.js '<config JSON>'
 *
 * Config (JSON object, all keys required unless a default is given):
 *
 *   url          raw framing: the WebSocket URL (ws://127.0.0.1:P/multiplex/websocket);
 *                sockjs framing: the SockJS prefix (ws://127.0.0.1:P/multiplex),
 *                each connection opening <prefix>/<server>/<session>/websocket
 *   framing      "raw" (one frame per WebSocket text message) or "sockjs"
 *                (client sends ["frame"], server sends a["frame",...], "o", "h")
 *   connections  how many WebSocket connections this process opens
 *   channels     channels per connection, 1 to 10: topics echo0 .. echo9
 *   window       echo requests kept outstanding per channel
 *   mode         "flood" (keep the window full), "pingpong" (window 1,
 *                latencies recorded) or "idle" (subscribe, then hold)
 *   deflate      offer permessage-deflate (default false); when the server
 *                accepts, every message is compressed both ways, as browsers do
 *   verify       compare every reply with what was sent (default false;
 *                replies are always checked while probing)
 *   serverPid    read /proc/<serverPid>/stat at the window's edges (optional)
 *   concurrency  connection handshakes in flight at once (default 64)
 *   resume       speak the resumable-session extension, as our clients do
 *                (docs/PROTOCOL-EXTENSIONS.md, section 3; default false):
 *                offer a session in the first frame, skip the server's
 *                "hey" and "ack" frames, acknowledge what arrives every 32
 *                frames, and after 50 ms with the next frame sent (in the
 *                same write) or alone within another 50 ms, as our server
 *                does
 *
 * A request is "msg,echoK,<payload>", the payload 100 bytes with commas in
 * it; a reply is the same text sent back. What one event-loop turn sends is
 * written to the socket once (cork/uncork around the turn): a generator that
 * wrote each message with its own syscall would be the bottleneck.
 *
 * stdout, one JSON line each:
 *   {"ready": true, ...}    connected, subscribed, and every channel answered
 *                           one probe: the server really serves it
 *   {"done": true, ...}     after the measuring window (flood, pingpong):
 *                           replies in it, its length, the server's CPU
 *                           ticks and ours over it, latency percentiles
 *   {"closed": true}        after "close" (idle)
 *   {"error": "..."}        then exit status 1
 * stdin, one command per line:
 *   go START_NS END_NS      start sending now; count replies between the two
 *                           CLOCK_MONOTONIC instants (the runner's clock too)
 *   close                   close every connection and exit (idle)
 * EOF on stdin (the runner is gone) ends the process.
 */
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const path = require("path");
const WebSocket = require(path.join(__dirname, "node_modules", "ws"));

const PAYLOAD = "0123456789,abcdefgh,".repeat(5); // 100 bytes, 5 commas
const PROBE_TIMEOUT_MS = 20000;
const CLOSE_TIMEOUT_MS = 3000;
const FIRST_REPLY_GRACE_NS = 10000000000n;

function fail(message) {
  process.stdout.write(JSON.stringify({ error: message }) + "\n");
  process.exit(1);
}

function say(object) {
  process.stdout.write(JSON.stringify(object) + "\n");
}

const cfg = Object.assign(
  { deflate: false, verify: false, serverPid: null, concurrency: 64, resume: false },
  JSON.parse(process.argv[2]),
);
if (!(cfg.channels >= 1 && cfg.channels <= 10)) {
  fail("channels must be 1 to 10");
}
const SOCKJS = cfg.framing === "sockjs";
const TEXT = [];     // per channel: the request's frame text, as sent
const REQUEST = [];  // per channel: the carrier message (Buffer)
for (let k = 0; k < cfg.channels; k++) {
  TEXT.push("msg,echo" + k + "," + PAYLOAD);
  REQUEST.push(Buffer.from(SOCKJS ? JSON.stringify([TEXT[k]]) : TEXT[k]));
}
const SEND_OPTIONS = { binary: false, compress: cfg.deflate };

// Without compression a request's WebSocket frame never changes but for its
// masking key, so each channel's frame is built once, masked with a key
// drawn at start, and requests are copies of it (servers cannot tell: they
// unmask every frame all the same). With compression, ws frames each one.
const FRAME = cfg.deflate ? null : REQUEST.map(maskedFrame);

function maskedFrame(payload) {
  const length = payload.length;
  const header = length < 126
    ? Buffer.from([0x81, 0x80 | length])
    : Buffer.from([0x81, 0x80 | 126, length >> 8, length & 0xff]);
  const key = crypto.randomBytes(4);
  const body = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) {
    body[i] = payload[i] ^ key[i & 3];
  }
  return Buffer.concat([header, key, body]);
}

// -- counters and state shared by every connection ---------------------------

let running = false;    // keep the windows full
let measuring = false;  // record latencies
let received = 0;
let mismatches = 0;
const latencies = [];
let pendingProbes = 0;
let onProbesDone = null;
let closing = false;
const startedAt = process.hrtime.bigint();
let connectedAt = null;

class Conn {
  constructor(index) {
    this.index = index;
    this.ws = null;
    this.queued = []; // frames to write at the end of this event-loop turn
    this.corked = false;
    this.sentAt = new Array(cfg.channels).fill(0);
    this.probing = new Array(cfg.channels).fill(false);
    this.frames = 0;      // frames received since the hello (resume)
    this.acked = 0;       // of them, acknowledged
    this.ackTimer = null;
    this.sent = 0;        // frames sent (resume)
    this.sentWhenArmed = 0;
    this.overdue = false; // the next frame sent carries the ack
  }
}

// -- the resumable-session extension (cfg.resume) ----------------------------

const ACK_EVERY = 32;
const ACK_DELAY_MS = 50;
const GOODBYE = "hey,r1,bye";

// A frame that arrived on a session: control frames are not counted; the
// rest are acknowledged in batches, as our clients do. Whether to go on.
function counted(conn, text) {
  if (text.startsWith("hey,") || text.startsWith("ack,")) {
    return false;
  }
  conn.frames++;
  if (conn.frames - conn.acked >= ACK_EVERY) {
    acknowledge(conn);
  } else if (conn.ackTimer === null) {
    armAck(conn);
  }
  return true;
}

function armAck(conn) {
  conn.sentWhenArmed = conn.sent;
  conn.ackTimer = setTimeout(ackTimerFired, ACK_DELAY_MS, conn);
}

// As our server does: while frames go out, the ack rides with the next one
// (in the same write); alone if none went out within another delay. A client
// that writes each frame with its own syscall gains nothing by it.
function ackTimerFired(conn) {
  conn.ackTimer = null;
  if (conn.frames === conn.acked) {
    return;
  }
  if (!conn.overdue && conn.sent !== conn.sentWhenArmed) {
    conn.overdue = true;
    armAck(conn);
    return;
  }
  acknowledge(conn);
}

function acknowledge(conn) {
  conn.overdue = false;
  if (conn.ackTimer !== null) {
    clearTimeout(conn.ackTimer);
    conn.ackTimer = null;
  }
  if (conn.frames === conn.acked || closing) {
    return;
  }
  conn.acked = conn.frames;
  const text = "ack," + conn.frames;
  const message = SOCKJS ? JSON.stringify([text]) : text;
  if (FRAME !== null) { // with this turn's requests, in the same write
    if (conn.queued.length === 0) {
      process.nextTick(flush, conn);
    }
    conn.queued.push(maskedFrame(Buffer.from(message)));
    return;
  }
  if (!conn.corked) {
    conn.corked = true;
    conn.ws._socket.cork();
    process.nextTick(uncork, conn);
  }
  conn.ws.send(message, SEND_OPTIONS);
}

// Everything sent during one event-loop turn leaves in one write.
function send(conn, k) {
  conn.sent++;
  if (FRAME !== null) {
    if (conn.queued.length === 0) {
      process.nextTick(flush, conn);
    }
    conn.queued.push(FRAME[k]);
  } else {
    if (!conn.corked) {
      conn.corked = true;
      conn.ws._socket.cork();
      process.nextTick(uncork, conn);
    }
    conn.ws.send(REQUEST[k], SEND_OPTIONS);
  }
  if (conn.overdue) {
    acknowledge(conn);
  }
}

function flush(conn) {
  const frames = conn.queued;
  conn.queued = [];
  const socket = conn.ws._socket;
  if (socket && !closing) {
    socket.write(frames.length === 1 ? frames[0] : Buffer.concat(frames));
  }
}

function uncork(conn) {
  conn.corked = false;
  if (conn.ws._socket) {
    conn.ws._socket.uncork();
  }
}

function reply(conn, k, text) {
  if (k < 0 || k >= cfg.channels) {
    return;
  }
  received++;
  if (conn.probing[k]) {
    conn.probing[k] = false;
    if (text.toString() !== TEXT[k]) {
      fail("channel echo" + k + " answered " + JSON.stringify(text.toString()));
    }
    if (--pendingProbes === 0 && onProbesDone) {
      onProbesDone();
    }
    return;
  }
  if (cfg.verify && text.toString() !== TEXT[k]) {
    mismatches++;
  }
  if (measuring && cfg.mode === "pingpong") {
    latencies.push(Number(process.hrtime.bigint()) - conn.sentAt[k]);
  }
  if (running) {
    if (cfg.mode === "pingpong") {
      conn.sentAt[k] = Number(process.hrtime.bigint());
    }
    send(conn, k);
  }
}

// "msg,echoK,...": the channel is the digit at index 8. (Of what comes
// back, only replies have "m" at 0, "," at 3 and "o" at 7: "sub,echoK"
// from a plain echo does not.)

function onRawMessage(conn, data) {
  if (cfg.resume && !counted(conn, data.toString())) {
    return;
  }
  if (data.length > 9 && data[0] === 0x6d && data[3] === 0x2c && data[7] === 0x6f) {
    reply(conn, data[8] - 48, data);
  }
}

function onSockJSMessage(conn, data) {
  const type = data[0];
  if (type === 0x61) { // a[...]: one or more messages
    const messages = JSON.parse(data.toString("utf8", 1));
    for (let i = 0; i < messages.length; i++) {
      const text = messages[i];
      if (cfg.resume && !counted(conn, text)) {
        continue;
      }
      if (text.startsWith("msg,echo")) {
        reply(conn, text.charCodeAt(8) - 48, text);
      }
    }
  } else if (type === 0x63 && !closing) { // c[code,"reason"]
    fail("connection " + conn.index + " closed by the server: " + data);
  }
  // "o" is handled while connecting; "h" (heartbeat) needs nothing.
}

// -- connecting ------------------------------------------------------------

function connectOne(index) {
  return new Promise((resolve, reject) => {
    const conn = new Conn(index);
    let url = cfg.url;
    if (SOCKJS) {
      const session = process.pid.toString(36) + "x" + index.toString(36);
      url += "/" + String(index % 1000).padStart(3, "0") + "/" + session + "/websocket";
    }
    const ws = new WebSocket(url, {
      perMessageDeflate: cfg.deflate ? { threshold: 0 } : false,
      skipUTF8Validation: true,
    });
    conn.ws = ws;
    let opened = false;
    const opening = (data) => {
      if (!SOCKJS) {
        return;
      }
      if (data[0] !== 0x6f) { // the SockJS open frame "o"
        reject(new Error("expected the SockJS open frame, got " + data));
        return;
      }
      ws.removeListener("message", opening);
      ws.on("message", (message) => onSockJSMessage(conn, message));
      resolve(conn);
    };
    ws.on("open", () => {
      opened = true;
      if (SOCKJS) {
        ws.on("message", opening);
      } else {
        ws.on("message", (message) => onRawMessage(conn, message));
        resolve(conn);
      }
    });
    ws.on("error", (error) => {
      if (!opened) {
        reject(error);
      } else if (!closing) {
        fail("connection " + index + ": " + error.message);
      }
    });
    ws.on("close", (code, reason) => {
      if (!opened) {
        reject(new Error("closed while opening: " + code));
      } else if (!closing) {
        fail("connection " + index + " closed: " + code + " " + reason);
      }
    });
  });
}

// Connect; as soon as a connection opens, subscribe its channels and send
// one request on each; then wait for every echo: a server that ignored a
// "sub" would never answer.
async function connectAndProbe() {
  pendingProbes = cfg.connections * cfg.channels;
  const probed = new Promise((resolve) => {
    onProbesDone = resolve;
  });
  const conns = new Array(cfg.connections);
  let next = 0;
  async function worker() {
    while (next < cfg.connections) {
      const index = next++;
      conns[index] = await connectOne(index);
      subscribeAndProbe(conns[index]);
    }
  }
  const workers = [];
  for (let i = 0; i < Math.min(cfg.concurrency, cfg.connections); i++) {
    workers.push(worker());
  }
  await Promise.all(workers);
  connectedAt = process.hrtime.bigint();
  const timer = setTimeout(() => {
    fail(pendingProbes + " channels never answered their probe");
  }, PROBE_TIMEOUT_MS);
  await probed;
  clearTimeout(timer);
  return conns;
}

function subscribeAndProbe(conn) {
  const texts = [];
  if (cfg.resume) {
    texts.push("hey,r1," + crypto.randomBytes(18).toString("base64url"));
  }
  for (let k = 0; k < cfg.channels; k++) {
    texts.push("sub,echo" + k);
  }
  for (let k = 0; k < cfg.channels; k++) {
    conn.probing[k] = true;
    texts.push(TEXT[k]);
  }
  if (SOCKJS) { // one SockJS message frame may carry them all
    conn.ws.send(JSON.stringify(texts), SEND_OPTIONS);
    return;
  }
  conn.ws._socket.cork();
  for (const text of texts) {
    conn.ws.send(text, SEND_OPTIONS);
  }
  conn.ws._socket.uncork();
}

// -- measuring ---------------------------------------------------------------

function serverTicks() {
  if (!cfg.serverPid) {
    return null;
  }
  const stat = fs.readFileSync("/proc/" + cfg.serverPid + "/stat", "latin1");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime + stime, in ticks
}

function snapshot() {
  return {
    t: process.hrtime.bigint(),
    received: received,
    cpu: process.cpuUsage(),
    server: serverTicks(),
  };
}

function percentile(sorted, p) {
  if (sorted.length === 0) {
    return null;
  }
  const rank = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, rank)];
}

function go(conns, startNs, endNs) {
  received = 0;
  running = true;
  for (const conn of conns) {
    for (let k = 0; k < cfg.channels; k++) {
      const window = cfg.mode === "pingpong" ? 1 : cfg.window;
      for (let i = 0; i < window; i++) {
        conn.sentAt[k] = Number(process.hrtime.bigint());
        send(conn, k);
      }
    }
  }
  let start = null;
  const now = process.hrtime.bigint();
  setTimeout(() => {
    start = snapshot();
    measuring = true;
  }, Math.max(0, Number(startNs - now) / 1e6));
  const finish = () => {
    if (received === 0 && process.hrtime.bigint() < endNs + FIRST_REPLY_GRACE_NS) {
      // Not one reply yet: a slow start (compression, a busy machine), or
      // a server that stopped answering. Wait a little before reporting.
      setTimeout(finish, 10);
      return;
    }
    const end = snapshot();
    running = false;
    measuring = false;
    if (start === null) {
      fail("the window ended before it started");
    }
    latencies.sort((a, b) => a - b);
    closeAllAndExit(conns, {
      done: true,
      received: end.received - start.received,
      total: end.received, // since "go", warm-up included
      seconds: Number(end.t - start.t) / 1e9,
      serverTicks: start.server === null ? null : end.server - start.server,
      cpuSeconds:
        (end.cpu.user - start.cpu.user + end.cpu.system - start.cpu.system) / 1e6,
      latency: cfg.mode === "pingpong" ? {
        count: latencies.length,
        p50_us: percentile(latencies, 50) / 1e3,
        p99_us: percentile(latencies, 99) / 1e3,
      } : null,
      mismatches: mismatches,
    });
  };
  setTimeout(finish, Math.max(0, Number(endNs - now) / 1e6));
}

// Report `last`, then close every connection with a close handshake (so
// servers see a clean close), waiting at most CLOSE_TIMEOUT_MS; then exit.
// A session says goodbye first, as our clients do on close: otherwise the
// server would hold it for its grace period, and the next windows would be
// measured beside every session of the last ones.
function closeAllAndExit(conns, last) {
  closing = true;
  say(last);
  let open = 0;
  const finish = () => process.stdout.write("", () => process.exit(0));
  const goodbye = SOCKJS ? JSON.stringify([GOODBYE]) : GOODBYE;
  for (const conn of conns) {
    if (conn.ws.readyState === WebSocket.CLOSED) {
      continue;
    }
    open++;
    conn.ws.once("close", () => {
      if (--open === 0) {
        finish();
      }
    });
    if (cfg.resume) {
      conn.ws.send(goodbye, SEND_OPTIONS);
    }
    conn.ws.close(1000);
  }
  if (open === 0) {
    finish();
  }
  setTimeout(() => {
    for (const conn of conns) {
      conn.ws.terminate();
    }
    finish();
  }, CLOSE_TIMEOUT_MS);
}

function readCommands(run) {
  let buffered = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk) => {
    buffered += chunk;
    const lines = buffered.split("\n");
    buffered = lines.pop();
    for (const line of lines) {
      run(line.trim().split(/\s+/));
    }
  });
  process.stdin.on("end", () => process.exit(closing ? 0 : 1));
}

async function main() {
  let conns;
  try {
    conns = await connectAndProbe();
  } catch (error) {
    fail("connecting to " + cfg.url + ": " + error.message);
  }
  say({
    ready: true,
    pid: process.pid,
    connections: conns.length,
    channels: conns.length * cfg.channels,
    extensions: conns[0].ws.extensions,
    connect_s: Number(connectedAt - startedAt) / 1e9,
    probe_s: Number(process.hrtime.bigint() - connectedAt) / 1e9,
  });
  readCommands((words) => {
    if (words[0] === "go" && cfg.mode !== "idle") {
      go(conns, BigInt(words[1]), BigInt(words[2]));
    } else if (words[0] === "close") {
      closeAllAndExit(conns, { closed: true });
    } else if (words[0]) {
      fail("unknown command " + JSON.stringify(words.join(" ")));
    }
  });
}

main();
