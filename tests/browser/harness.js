// Page-side half of the browser tests: opens a connection with whichever
// client the page loaded (the original multiplex_client.js or ours) and
// records every channel event in `harness.log[name]` as plain arrays the
// Python side can read: ["open"], ["message", data], ["close", code, reason]
// (plus "refused" when our client reports a refusal notice), and
// ["reconnect", code, reason]. Our client's multiplexer events go to
// `harness.multiplexerEvents`, and every "err" frame the server sent (a
// refusal or shutdown notice) to `harness.notices`.
"use strict";

var harness = {
  sock: null,
  multiplexer: null,
  // name -> channel and name -> events; null prototypes because the tests
  // use names such as "__proto__".
  channels: Object.create(null),
  log: Object.create(null),
  socketEvents: [],
  multiplexerEvents: [],
  notices: [],
  errors: [],

  // A new socket: a SockJS transport forced by name, or a native WebSocket
  // for transport "native"; its events go to harness.socketEvents.
  socket: function (transport, url) {
    var sock = transport === "native"
      ? new WebSocket(url)
      : new SockJS(url, null, { transports: [transport] });
    harness.sock = sock;
    sock.addEventListener("open", function () {
      harness.socketEvents.push(["open", sock.transport || "native"]);
    });
    sock.addEventListener("close", function (e) {
      harness.socketEvents.push(["close", e.code, e.reason]);
    });
    sock.addEventListener("message", function (e) {
      if (typeof e.data === "string" && e.data.indexOf("err,") === 0) {
        harness.notices.push(e.data);
      }
    });
    return sock;
  },

  // Open the socket and multiplex over it.
  connect: function (transport, url) {
    var sock = harness.socket(transport, url);
    harness.multiplexer = new WebSocketMultiplex(sock);
    return sock;
  },

  // Our client only: multiplex over sockets made on demand, reconnecting
  // with `options` (see websocket-multiplex.d.ts).
  connectReconnecting: function (transport, url, options) {
    var multiplexer = new WebSocketMultiplex(function () {
      return harness.socket(transport, url);
    }, options);
    var events = harness.multiplexerEvents;
    multiplexer.onopen = function (e) { events.push(["open", e.reconnected]); };
    multiplexer.onreconnecting = function (e) {
      events.push(["reconnecting", e.attempt, e.code]);
    };
    multiplexer.onclose = function (e) { events.push(["close", e.code, e.reason]); };
    harness.multiplexer = multiplexer;
    return multiplexer;
  },

  // Open a channel and record its events; `greet` is sent from onopen (the
  // original client throws on send before the socket is open).
  open: function (name, greet) {
    return harness.openAs(name, name, greet);
  },

  // The same, under another label: for several channels of one name.
  openAs: function (label, name, greet) {
    var channel = harness.multiplexer.channel(name);
    var log = harness.log[label] = [];
    harness.channels[label] = channel;
    channel.onopen = function () {
      log.push(["open"]);
      if (greet !== undefined) {
        channel.send(greet);
      }
    };
    channel.onmessage = function (e) { log.push(["message", e.data]); };
    channel.onclose = function (e) {
      var entry = ["close", e.code, e.reason];
      if (e.refused) {
        entry.push("refused");
      }
      log.push(entry);
    };
    channel.onreconnect = function (e) { log.push(["reconnect", e.code, e.reason]); };
    return channel;
  },

  send: function (name, data) {
    harness.channels[name].send(data);
  },

  close: function (name) {
    harness.channels[name].close();
  },

  messages: function (name) {
    return (harness.log[name] || []).filter(function (e) {
      return e[0] === "message";
    }).map(function (e) { return e[1]; });
  },

  has: function (name, type) {
    return (harness.log[name] || []).some(function (e) { return e[0] === type; });
  },
};

window.addEventListener("error", function (e) {
  harness.errors.push(String(e.message) + " (socket state " +
    (harness.sock ? harness.sock.readyState : "none") + ")");
});
