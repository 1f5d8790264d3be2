#!/usr/bin/env node
/*
 * The ORIGINAL server, for comparison: npm websocket-multiplex@0.1.0
 * (multiplex_server.js) on sockjs@0.3.24 (sockjs-node), unmodified, from the
 * pinned test fixtures in tests/node/node_modules (`npm ci --prefix
 * tests/node`).
 *
 *     node --expose-gc benchmarks/servers/original.js
 *
 * Services echo0 .. echo9 each send every message back on their channel.
 * SockJS at /multiplex (the websocket transport is
 * /multiplex/<server>/<session>/websocket), the raw WebSocket endpoint at
 * /multiplex/websocket.
 *
 * stdout: {"ready": true, "port": P, "pid": N, "versions": {...}}, then
 * {"gc": true} for each "gc" line on stdin (a full collection when node
 * runs with --expose-gc). EOF on stdin ends the process.
 */
"use strict";

const http = require("http");
const path = require("path");

const MODULES = path.join(__dirname, "..", "..", "tests", "node", "node_modules");
const sockjs = require(path.join(MODULES, "sockjs"));
const multiplex = require(path.join(MODULES, "websocket-multiplex"));

function version(name) {
  return require(path.join(MODULES, name, "package.json")).version;
}

const service = sockjs.createServer({
  log: (severity, line) => {
    if (severity === "error") process.stderr.write("sockjs: " + line + "\n");
  },
});
const multiplexer = new multiplex.MultiplexServer(service);
for (let k = 0; k < 10; k++) {
  multiplexer.registerChannel("echo" + k).on("connection", (channel) => {
    channel.on("data", (data) => channel.write(data));
  });
}

const server = http.createServer((request, response) => {
  response.writeHead(404, { "Content-Type": "text/plain" });
  response.end("not found\n");
});
service.installHandlers(server, { prefix: "/multiplex" });
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({
    ready: true,
    port: server.address().port,
    pid: process.pid,
    versions: {
      node: process.versions.node,
      sockjs: version("sockjs"),
      "websocket-multiplex": version("websocket-multiplex"),
      "faye-websocket": version("faye-websocket"),
    },
  }) + "\n");
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
