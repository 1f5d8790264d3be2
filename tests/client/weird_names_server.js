#!/usr/bin/env node
/*
 * The ORIGINAL websocket-multiplex 0.1.0 server (pinned, unmodified, in
 * tests/node/node_modules) with echo services whose names need escape():
 * the names are given as JSON on the command line, so the original's own
 * registerChannel(name) escapes them.
 *
 *     node weird_names_server.js '["weird name,ü/%😀", "日本"]'
 *
 * Listens on 127.0.0.1, a free port; SockJS at /multiplex, its raw
 * WebSocket at /multiplex/websocket. Prints one line once listening:
 *
 *     {"ready": true, "port": P, "url": "http://127.0.0.1:P/multiplex",
 *      "websocket": "ws://127.0.0.1:P/multiplex/websocket"}
 */
"use strict";

var http = require("http");
var path = require("path");

var MODULES = path.join(__dirname, "..", "node", "node_modules");
var sockjs = require(path.join(MODULES, "sockjs"));
var multiplex = require(path.join(MODULES, "websocket-multiplex"));

var names = JSON.parse(process.argv[2] || "[]");
var service = sockjs.createServer({ log: function () {} });
var multiplexer = new multiplex.MultiplexServer(service);
names.forEach(function (name) {
  multiplexer.registerChannel(name).on("connection", function (channel) {
    channel.on("data", function (data) { channel.write(data); });
  });
});

var server = http.createServer();
service.installHandlers(server, { prefix: "/multiplex" });
server.listen(0, "127.0.0.1", function () {
  var port = server.address().port;
  process.stdout.write(JSON.stringify({
    ready: true,
    port: port,
    url: "http://127.0.0.1:" + port + "/multiplex",
    websocket: "ws://127.0.0.1:" + port + "/multiplex/websocket",
  }) + "\n");
});
