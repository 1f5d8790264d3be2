// A socket the test drives by hand, for our client's own semantics: it
// behaves like SockJS (send() throws while connecting, is dropped once
// closed) and records what the client put on the wire in `sent`.
"use strict";

class FakeSocket {
  constructor(readyState) {
    this.readyState = readyState === undefined ? 0 : readyState;
    this.sent = [];
    this.listeners = { open: [], message: [], close: [] };
  }

  addEventListener(type, listener) {
    this.listeners[type].push(listener);
  }

  send(data) {
    if (this.readyState === 0) {
      throw new Error("InvalidStateError: The connection has not been established yet");
    }
    if (this.readyState === 1) {
      this.sent.push(data);
    }
  }

  open() {
    this.readyState = 1;
    this.listeners.open.forEach((f) => f({ type: "open" }));
  }

  receive(data) {
    this.listeners.message.forEach((f) => f({ type: "message", data: data }));
  }

  close(code, reason, wasClean) {
    this.readyState = 3;
    const event = {
      type: "close",
      code: code === undefined ? 1000 : code,
      reason: reason === undefined ? "Normal closure" : reason,
      wasClean: wasClean === undefined ? true : wasClean,
    };
    this.listeners.close.forEach((f) => f(event));
  }
}

// Record a channel's events as [type, data] or [type, code, reason, wasClean].
function record(channel, log) {
  log = log || [];
  channel.onopen = () => log.push(["open", channel.readyState]);
  channel.onmessage = (e) => log.push(["message", e.data]);
  channel.onclose = (e) => log.push(["close", e.code, e.reason, e.wasClean]);
  return log;
}

// Resolve after every timer queued so far (the client fires open and
// close events from setTimeout(0)).
function tick() {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

const reported = [];
window.addEventListener("error", (e) => {
  reported.push(String(e.error && e.error.message));
  e.preventDefault();
});

// Record a channel's events with every field the extensions add:
// ["close", code, reason, wasClean, refused] and ["reconnect", code, reason].
function recordAll(channel, log) {
  log = record(channel, log);
  channel.onclose = (e) => log.push(["close", e.code, e.reason, e.wasClean, e.refused]);
  channel.onreconnect = (e) => log.push(["reconnect", e.code, e.reason, e.wasClean]);
  return log;
}

// A socket factory for reconnection tests: every socket it made is in
// `factory.sockets`, the newest last.
function fakeFactory() {
  const factory = () => {
    const sock = new FakeSocket(0);
    factory.sockets.push(sock);
    return sock;
  };
  factory.sockets = [];
  return factory;
}

// Record a multiplexer's own events as plain arrays.
function recordMultiplexer(multiplexer, log) {
  log = log || [];
  multiplexer.onopen = (e) => log.push(["open", e.reconnected]);
  multiplexer.onreconnecting = (e) => log.push(["reconnecting", e.attempt, e.delay, e.code]);
  multiplexer.onclose = (e) => log.push(["close", e.code, e.reason, e.wasClean]);
  return log;
}

// Wait (bounded) until predicate() is true: for the reconnection timers.
async function until(predicate, timeout) {
  const deadline = Date.now() + (timeout === undefined ? 2000 : timeout);
  while (!predicate()) {
    if (Date.now() > deadline) {
      throw new Error("timed out waiting for " + predicate);
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}
