#!/usr/bin/env node
/*
 * The cheapest WebSocket echo we can write: the load generator's ceiling.
 *
 * No WebSocket library, no strings: each chunk read from a socket is parsed
 * into frames, every text frame is unmasked into a server frame in one
 * output buffer, and that buffer is written once. Measured against it, the
 * load generator (benchmarks/node/loadgen.js) shows the most it can offer:
 * a server row close to this one is limited by the generator, not by
 * itself.
 *
 *     node benchmarks/servers/trivial_echo.js
 *
 * Paths: <anything>/<server>/<session>/websocket speaks SockJS framing (it
 * sends "o", then answers the client message ["..."] with a["..."]); any
 * other path echoes text messages unchanged. It is not a multiplexer:
 * "sub,echo0" comes back too, and the generator ignores it.
 *
 * stdout: {"ready": true, "port": P, "pid": N}, then {"gc": true} for each
 * "gc" line on stdin. EOF on stdin ends the process.
 */
"use strict";

const crypto = require("crypto");
const net = require("net");

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const SOCKJS_PATH = /^\/.*\/[^/.]+\/[^/.]+\/websocket$/;
const OPEN_FRAME = Buffer.from([0x81, 0x01, 0x6f]); // text "o"

function handshake(socket, head) {
  const text = head.toString("latin1");
  const key = /\r\nsec-websocket-key:\s*(\S+)/i.exec(text);
  const target = text.slice(text.indexOf(" ") + 1, text.indexOf(" HTTP/"));
  if (!key) {
    socket.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    return null;
  }
  const accept = crypto.createHash("sha1").update(key[1] + GUID).digest("base64");
  socket.write(
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
      "Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n",
  );
  const sockjs = SOCKJS_PATH.test(target.split("?")[0]);
  if (sockjs) {
    socket.write(OPEN_FRAME);
  }
  return sockjs;
}

// Turns the client frames in `input` into server frames; returns
// [output, bytes consumed]. Only whole frames are consumed.
function echoFrames(input, sockjs, socket) {
  const out = Buffer.allocUnsafe(input.length + (input.length >> 2) + 16);
  let o = 0;
  let i = 0;
  while (i + 2 <= input.length) {
    const b0 = input[i];
    let length = input[i + 1] & 0x7f;
    let p = i + 2;
    if (length === 126) {
      if (p + 2 > input.length) break;
      length = input.readUInt16BE(p);
      p += 2;
    } else if (length === 127) {
      if (p + 8 > input.length) break;
      length = Number(input.readBigUInt64BE(p));
      p += 8;
    }
    if (p + 4 + length > input.length) break;
    const mask = p;
    p += 4;
    const opcode = b0 & 0x0f;
    if (opcode === 0x8) { // close: answer it and hang up
      socket.end(Buffer.from([0x88, 0x00]));
      return [out.subarray(0, o), input.length];
    }
    if (opcode === 0x1 || opcode === 0x2 || opcode === 0x9) {
      const extra = sockjs && opcode === 0x1 ? 1 : 0;
      const total = length + extra;
      if (o + total + 10 > out.length) break; // the rest goes next round
      out[o++] = opcode === 0x9 ? 0x8a : 0x80 | opcode;
      if (total < 126) {
        out[o++] = total;
      } else if (total < 65536) {
        out[o++] = 126;
        out.writeUInt16BE(total, o);
        o += 2;
      } else {
        out[o++] = 127;
        out.writeBigUInt64BE(BigInt(total), o);
        o += 8;
      }
      if (extra) {
        out[o++] = 0x61; // "a": ["..."] becomes a["..."]
      }
      for (let j = 0; j < length; j++) {
        out[o++] = input[p + j] ^ input[mask + (j & 3)];
      }
    }
    i = p + length;
  }
  return [out.subarray(0, o), i];
}

const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  let pending = Buffer.alloc(0);
  let sockjs = null; // null until the handshake is done
  socket.on("data", (chunk) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    if (sockjs === null) {
      const end = pending.indexOf("\r\n\r\n");
      if (end < 0) return;
      sockjs = handshake(socket, pending.subarray(0, end));
      if (sockjs === null) return;
      pending = pending.subarray(end + 4);
    }
    while (pending.length) {
      const [out, used] = echoFrames(pending, sockjs, socket);
      if (out.length) socket.write(out);
      pending = pending.subarray(used);
      if (used === 0) break;
    }
  });
  socket.on("error", () => {});
});

server.listen(0, "127.0.0.1", () => {
  const port = server.address().port;
  process.stdout.write(JSON.stringify({ ready: true, port: port, pid: process.pid }) + "\n");
});

let buffered = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  buffered += chunk;
  const lines = buffered.split("\n");
  buffered = lines.pop();
  for (const line of lines) {
    if (line.trim() === "gc") {
      if (global.gc) global.gc();
      process.stdout.write(JSON.stringify({ gc: true }) + "\n");
    }
  }
});
process.stdin.on("end", () => process.exit(0));
