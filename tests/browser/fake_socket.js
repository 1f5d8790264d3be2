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
