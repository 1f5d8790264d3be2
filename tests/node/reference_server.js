#!/usr/bin/env node
/*
 * The ORIGINAL websocket-multiplex 0.1.0 server, as a test peer.
 *
 * Test fixture code of ours around the pinned, unmodified npm packages in
 * tests/node/node_modules: sockjs 0.3.24 (sockjs-node) and
 * websocket-multiplex 0.1.0 (multiplex_server.js). It serves the classic
 * example's services, with the same texts as our demo:
 *
 *     ann    greets "Ann says hi!", answers X with "Ann nods: X"
 *     bob    greets "Bob doesn't agree.", answers X with "Bob says no to: X"
 *     carl   sends "Carl says goodbye!" and closes the channel (uns)
 *     echo   sends every message back unchanged
 *
 * Usage:
 *
 *     node tests/node/reference_server.js [--host H] [--port P]
 *         [--prefix /multiplex] [--sockjs-url URL-or-FILE] [--events]
 *
 *   --host        address to listen on (env HOST; default 127.0.0.1)
 *   --port        port, 0 picks a free one (env PORT; default 0)
 *   --prefix      SockJS endpoint path (default /multiplex); the raw
 *                 WebSocket endpoint (no SockJS framing) is <prefix>/websocket
 *   --sockjs-url  the sockjs-client the iframe transports load (env
 *                 SOCKJS_URL): an http(s) URL used as is, or a local file
 *                 served by this server at /sockjs.min.js. Default: the
 *                 pinned tests/node/node_modules/sockjs-client copy, so
 *                 every transport works offline.
 *   --events      also print one JSON line per thing the server sees (see
 *                 below). Off by default: nobody has to drain stdout.
 *
 * stdout, one JSON object per line. The first line says it is listening:
 *
 *     {"ready": true, "port": 40123, "url": "http://127.0.0.1:40123/multiplex",
 *      "websocket": "ws://127.0.0.1:40123/multiplex/websocket", "pid": 4711}
 *
 * With --events, then (conn is a counter per SockJS connection):
 *
 *     {"event": "connection", "conn": 1, "protocol": "websocket"}
 *     {"event": "open", "conn": 1, "service": "ann"}
 *     {"event": "message", "conn": 1, "service": "ann", "data": "hello"}
 *     {"event": "channel-closed", "conn": 1, "service": "ann"}
 *     {"event": "connection-closed", "conn": 1}
 *
 * stdin, one command per line (EOF is ignored; stop it with a signal):
 *
 *     close [CODE [REASON]]   close every open SockJS connection from the
 *                             server side (default 3000 "closed by server");
 *                             answers {"closed": <how many>}
 *
 * Errors go to stderr. The original server's known flaws are kept on
 * purpose (PROTOCOL.md): it ignores unknown topics (including our
 * "name#instance" ones) silently, sends no "err", and crashes on a topic
 * such as "toString".
 */
"use strict";

var fs = require("fs");
var http = require("http");
var path = require("path");

var MODULES = path.join(__dirname, "node_modules");
var sockjs = require(path.join(MODULES, "sockjs"));
var multiplex = require(path.join(MODULES, "websocket-multiplex"));

var SOCKJS_CLIENT = path.join(MODULES, "sockjs-client", "dist", "sockjs.min.js");

function parseArgs(argv) {
  var options = {
    host: process.env.HOST || "127.0.0.1",
    port: process.env.PORT === undefined ? 0 : Number(process.env.PORT),
    prefix: "/multiplex",
    sockjsUrl: process.env.SOCKJS_URL || SOCKJS_CLIENT,
    events: false,
  };
  var valued = { "--host": "host", "--port": "port", "--prefix": "prefix",
                 "--sockjs-url": "sockjsUrl" };
  for (var i = 0; i < argv.length; i++) {
    var arg = argv[i];
    var eq = arg.indexOf("=");
    var flag = eq < 0 ? arg : arg.slice(0, eq);
    if (flag === "--events") {
      options.events = true;
    } else if (flag in valued) {
      var value = eq < 0 ? argv[++i] : arg.slice(eq + 1);
      if (value === undefined) {
        usage("missing value for " + flag);
      }
      options[valued[flag]] = value;
    } else {
      usage("unknown argument " + JSON.stringify(arg));
    }
  }
  options.port = Number(options.port);
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
    usage("--port must be an integer from 0 to 65535");
  }
  return options;
}

function usage(problem) {
  process.stderr.write("reference_server.js: " + problem + "\n" +
    "usage: node reference_server.js [--host H] [--port P] [--prefix /multiplex]" +
    " [--sockjs-url URL-or-FILE] [--events]\n");
  process.exit(2);
}

function say(object) {
  process.stdout.write(JSON.stringify(object) + "\n");
}

// The classic example's services on a MultiplexServer over `service`.
function registerServices(multiplexer, report) {
  function replying(name, greeting, reply) {
    multiplexer.registerChannel(name).on("connection", function (channel) {
      var conn = channel.conn;
      report({ event: "open", conn: conn._testId, service: name });
      channel.on("close", function () {
        report({ event: "channel-closed", conn: conn._testId, service: name });
      });
      if (greeting !== null) {
        channel.write(greeting);
      }
      channel.on("data", function (data) {
        report({ event: "message", conn: conn._testId, service: name, data: data });
        channel.write(reply(data));
      });
    });
  }
  replying("ann", "Ann says hi!", function (x) { return "Ann nods: " + x; });
  replying("bob", "Bob doesn't agree.", function (x) { return "Bob says no to: " + x; });
  replying("echo", null, function (x) { return x; });
  multiplexer.registerChannel("carl").on("connection", function (channel) {
    var conn = channel.conn;
    report({ event: "open", conn: conn._testId, service: "carl" });
    channel.on("close", function () {
      report({ event: "channel-closed", conn: conn._testId, service: "carl" });
    });
    channel.write("Carl says goodbye!");
    channel.end();
  });
}

function main() {
  var options = parseArgs(process.argv.slice(2));
  var report = options.events ? say : function () {};
  var clientScript = null;
  var sockjsUrl = options.sockjsUrl;
  if (sockjsUrl.indexOf("://") < 0) {
    clientScript = fs.readFileSync(sockjsUrl);  // fails loudly if missing
    sockjsUrl = "/sockjs.min.js";  // resolved against this server's origin
  }

  var service = sockjs.createServer({
    sockjs_url: sockjsUrl,
    log: function (severity, line) {
      if (severity === "error") {
        process.stderr.write("sockjs: " + line + "\n");
      }
    },
  });
  var open = new Set();
  var counter = 0;
  service.on("connection", function (conn) {
    conn._testId = ++counter;
    open.add(conn);
    report({ event: "connection", conn: conn._testId, protocol: conn.protocol });
    conn.on("close", function () {
      open.delete(conn);
      report({ event: "connection-closed", conn: conn._testId });
    });
  });
  // Registered after our own listener, so the original sees each
  // connection second and our id is set by then.
  registerServices(new multiplex.MultiplexServer(service), report);

  var server = http.createServer(function (request, response) {
    if (clientScript !== null && request.url.split("?")[0] === "/sockjs.min.js") {
      response.writeHead(200, {
        "Content-Type": "application/javascript",
        "Access-Control-Allow-Origin": "*",
      });
      response.end(clientScript);
    } else {
      response.writeHead(404, { "Content-Type": "text/plain" });
      response.end("not found\n");
    }
  });
  service.installHandlers(server, { prefix: options.prefix });

  readCommands(function (words) {
    if (words[0] === "close") {
      var code = words[1] === undefined ? 3000 : Number(words[1]);
      var reason = words.length > 2 ? words.slice(2).join(" ") : "closed by server";
      var closing = Array.from(open);
      closing.forEach(function (conn) { conn.close(code, reason); });
      say({ closed: closing.length });
    } else if (words.length) {
      process.stderr.write("reference_server.js: unknown command " +
        JSON.stringify(words.join(" ")) + "\n");
    }
  });

  server.on("error", function (error) {
    process.stderr.write("reference_server.js: " + error.message + "\n");
    process.exit(1);
  });
  server.listen(options.port, options.host, function () {
    var port = server.address().port;
    var host = options.host.indexOf(":") < 0 ? options.host : "[" + options.host + "]";
    var origin = "http://" + host + ":" + port;
    say({
      ready: true,
      port: port,
      url: origin + options.prefix,
      websocket: "ws://" + host + ":" + port + options.prefix + "/websocket",
      pid: process.pid,
    });
  });
}

function readCommands(run) {
  var buffered = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", function (chunk) {
    buffered += chunk;
    var lines = buffered.split("\n");
    buffered = lines.pop();
    lines.forEach(function (line) { run(line.trim().split(/\s+/).filter(Boolean)); });
  });
  process.stdin.on("error", function () {});
}

main();
