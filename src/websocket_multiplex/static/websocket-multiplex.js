/*
 * websocket-multiplex browser client: many virtual channels over one
 * SockJS connection or WebSocket. Wire-compatible with the JavaScript
 * websocket-multiplex 0.1.0 (see docs/PROTOCOL.md); a drop-in for its
 * multiplex_client.js:
 *
 *     var multiplexer = new WebSocketMultiplex(new SockJS("/multiplex"));
 *     var ann = multiplexer.channel("ann");
 *     ann.onopen = function () { ann.send("hello"); };
 *     ann.onmessage = function (e) { console.log(e.data); };
 *     ann.onclose = function (e) { console.log("closed:", e.code, e.reason); };
 *
 * Automatic reconnection: give a function that makes the socket instead of
 * the socket, and options (every one optional; delays in milliseconds):
 *
 *     var multiplexer = new WebSocketMultiplex(
 *       function () { return new SockJS("/multiplex"); },
 *       {reconnect: {initialDelay: 500, maxDelay: 10000, maxAttempts: Infinity}});
 *     multiplexer.onreconnecting = function (e) { show("offline, retry", e.attempt); };
 *     multiplexer.onopen = function (e) { show(e.reconnected ? "back" : "online"); };
 *     ann.onreconnect = function () { ann.send("resync please"); };
 *
 * - With a function, reconnection is on unless {reconnect: false}. When
 *   the socket closes (or fails to open), the multiplexer fires
 *   "reconnecting" ({attempt, delay, code, reason, wasClean}) and calls the
 *   function again after `delay`: exponential backoff with full jitter,
 *   a random delay in [0, min(maxDelay, initialDelay * 2^(attempt-1))).
 *   The count starts again from 1 once a socket opens. After maxAttempts
 *   failed attempts in a row it gives up and closes like a plain socket.
 * - Channels stay open (readyState OPEN) across the gap. send() queues
 *   while the socket is down (in memory, up to maxQueue: see below); on
 *   the new socket every open channel sends "sub" again with the same
 *   topic, then its queued messages, then fires "reconnect" ({code,
 *   reason, wasClean} of the lost connection). Messages are NOT
 *   guaranteed across the gap: what was in flight when the connection
 *   broke, and whatever the service sent meanwhile, is lost, and the
 *   server sees a brand-new channel (its handler starts again: greetings
 *   come again). Resync application state in onreconnect. The server may
 *   refuse the new subscription, which closes the channel as below.
 * - Multiplexer events: "open" (a socket opened; `reconnected` is true
 *   when one was open before; none for a socket given already open),
 *   "reconnecting", and "close" (for good:
 *   multiplexer.close(), a plain socket closed, or reconnection gave up;
 *   {code, reason, wasClean}), as on<type> properties or listeners.
 * - multiplexer.close(code, reason) closes every channel and the socket
 *   and stops reconnecting.
 * - A graceful restart of our server costs a gap, not the channels: before
 *   closing the connection (code 1001) it sends every channel
 *   "err,<topic>,1001 server shutting down" then "uns,<topic>"
 *   (docs/PROTOCOL-EXTENSIONS.md). A reconnecting multiplexer keeps such a
 *   channel open (no close event): it is no longer subscribed, its sends
 *   queue, and once the next socket is open it subscribes again with the
 *   same topic and fires "reconnect" like every other channel. It waits for
 *   the connection to end to do so (our server closes it right after the
 *   notices). Without reconnection (a plain socket, {reconnect: false} or
 *   maxAttempts 0) the channel closes: code 1001, reason the notice's text,
 *   refused false (a shutdown is not a refusal).
 *
 * Resumable sessions (docs/PROTOCOL-EXTENSIONS.md, section 3), with a
 * function and reconnection, unless {resume: false}: the multiplexer
 * offers our server a session in its first frame ("hey,r1,<token>"), and
 * keeps every frame it sends until the server acknowledges it. When the
 * socket drops, the channels stay subscribed and their sends are kept (up
 * to 4 Mi characters; then send() throws QueueFullError); the next socket
 * names the session, and each side resends what the other lacks: nothing
 * is lost or repeated, the services' handlers never restart, and the
 * channels fire no event ("open" on the multiplexer says resumed: true).
 * If the server no longer holds the session (it waits 60 s by default),
 * every channel subscribes again and fires "reconnect" with recovered:
 * false, as above. close(), and the page going away (pagehide), tell the
 * server first ("hey,r1,bye"), so that it does not keep the session. The
 * original server ignores the offer: nothing changes.
 *
 * Group streams (section 4): a server of ours that keeps group histories
 * sends group messages with their place in the group's history; a
 * message event then has `group` set, and channel.positions says where
 * the channel stands. When the server could not resume the session, the
 * new one is told those positions, and the handlers that rejoin the groups
 * replay what the channel missed, once and in order. Where a group's
 * history no longer held all of it, the channel fires "gap" ({group,
 * recovered: false}) before what it still held.
 *
 * Presence (docs/PROTOCOL-EXTENSIONS.md, section 6), on a session only: a
 * service of our server may share who joins and leaves a group with a
 * channel. The channel then fires "presence" events: {group, kind:
 * "snapshot" | "joined" | "left", member, reason: "left" | "expired" (its
 * server process died), gap, members (sorted, after the event)}. Each
 * group starts with a snapshot; one with gap: true means changes were
 * missed, and gives the members now.
 *
 *     ann.onpresence = function (e) { showWhoIsHere(e.group, e.members); };
 *
 * Requests both ways (docs/PROTOCOL-EXTENSIONS.md, section 5), on a
 * resumable session with our server only:
 *
 *     const total = await cart.request("total", {timeout: 5000});
 *     cart.onrequest = function (request) { request.reply(confirm(request.data) ? "yes" : "no"); };
 *
 * - channel.request(data, {timeout}) returns a Promise of the service's
 *   reply (timeout in ms, default 10000; Infinity for none). Replies are
 *   matched by id, whatever their order. It rejects with an Error whose
 *   name says what happened and whose code is a number:
 *   "RequestFailedError" (code 400 or the service's own: it refused; 429
 *   maxOutstandingRequests in flight on this channel, at once, or the
 *   server's bound; 500 the service's handler failed; 501 it answers no
 *   requests; 502 the connection was replaced without resuming its
 *   session: it may or may not have been answered), "RequestTimeoutError"
 *   (504), "ChannelClosedError" (the channel closed first; code and reason
 *   those of its close event), and "RequestsNotSupportedError" without
 *   sending anything when the connection has no session: the original
 *   server, {resume: false}, a plain socket. A request made before the
 *   server answered the offer waits for the answer.
 * - channel.onrequest = function (request) {...} answers the service's
 *   requests: request.data, request.reply(text), request.fail(text, code
 *   = 400), once each. A handler that returns a Promise may resolve it
 *   with the reply instead; one that throws (or rejects) answers 500.
 *   Without an onrequest handler a request is answered 501 at once, so
 *   the service does not wait for nothing.
 *
 * Queued sends are bounded. Options (with a socket or a function):
 *
 *     new WebSocketMultiplex(sock, {maxQueue: 1000});
 *
 * - maxQueue (default 1000; Infinity for no bound, 0 to never queue): the
 *   most messages send() holds for all the channels of the multiplexer
 *   together while they wait for a socket: before the first open, during a
 *   reconnection gap, and after a 1001 notice. A queued message leaves the
 *   count when it goes on the wire or its channel closes.
 * - maxOutstandingRequests (default 64): requests in flight per channel,
 *   and the service's requests this page has not answered yet.
 * - When the queue is full, send() throws an Error named "QueueFullError"
 *   (its message says the queue is full and the connection is down) and
 *   that message is not queued; the ones queued before are kept and still
 *   go out. Sends on a subscribed channel of an open socket never count.
 *
 * Where it differs from the original, on purpose:
 *
 * - Every open channel fires "close" (exactly once) when the socket
 *   closes for good; the event carries the socket's code, reason and
 *   wasClean.
 * - When our server refuses or fails a channel it sends "err,<topic>,<code>
 *   <text>" then "uns" (docs/PROTOCOL-EXTENSIONS.md): the channel's close
 *   event then has refused: true, code the notice's number (404 no such
 *   service, 403 refused, 429 limit reached, 500 service failed) and reason
 *   its text. A refused channel that had not fired "open" yet never does.
 *   The original server sends no notice: such a channel just stays open.
 *   1001 (server shutting down) is not a refusal: see the graceful restart
 *   above.
 * - Several channels to one service: the first channel of a name uses the
 *   topic escape(name); another one opened while an earlier one is still
 *   open uses escape(name) + "#" + an instance id unique on this
 *   multiplexer. Our server gives each its own channel of that service;
 *   the original server ignores the "#" topics, so there only the first
 *   channel of a name works (the others stay silent).
 * - send() before the socket is open is queued (up to maxQueue) and sent
 *   right after the channel's "sub" frame (the original throws while the
 *   socket is connecting). send() between "sub" and the open event goes
 *   straight out.
 * - send() on a CLOSING or CLOSED channel is silently dropped, as a
 *   WebSocket drops it: once a channel is closed, this client puts no
 *   frame for it on the wire (the original still sends them).
 * - channel.name is the name you passed; channel.topic is its wire form
 *   (the original called the escaped form "name").
 * - Topic names are looked up in a Map, so names such as "__proto__",
 *   "toString" or "constructor" are ordinary names.
 *
 * This file is the source; websocket-multiplex.mjs (the same code as an ES
 * module) is generated from it by scripts/build_client.py. Keep the code
 * between the two BODY markers free of anything that only works in a
 * classic script.
 */
var WebSocketMultiplex = (function () {
"use strict";
// --- BEGIN BODY ---

// Socket and channel states, the same numbers as WebSocket and SockJS.
const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

// Messages queued while no socket is open, all channels together.
const MAX_QUEUE_DEFAULT = 1000;

// The notice code of a server that is shutting down (a restart).
const GOING_AWAY = 1001;

// Reconnection defaults, in milliseconds (see the header comment).
const RECONNECT_DEFAULTS = Object.freeze({
  initialDelay: 500,
  maxDelay: 10000,
  maxAttempts: Infinity,
});

// Report an exception thrown by an event handler without interrupting the
// dispatch to the other handlers and channels, as EventTarget does.
function reportHandlerError(error) {
  if (typeof reportError === "function") {
    reportError(error);
  } else {
    setTimeout(function () { throw error; }, 0);
  }
}

// The payload of a "pub" frame: group, epoch, offset, message
// (PROTOCOL-EXTENSIONS.md, section 4).
const PUBLICATION = /^([^,]+),([A-Za-z0-9_-]{1,32}),(\d{1,20}(?:-\d{1,20})?),([\s\S]*)$/;
const MAX_POSITIONS = 256;  // groups whose position a channel keeps

// Split a frame the way the reference does (split on "," then join the
// rest): returns null when there is no topic.
function parseFrame(text) {
  const first = text.indexOf(",");
  if (first < 0) {
    return null;
  }
  const second = text.indexOf(",", first + 1);
  return {
    type: text.slice(0, first),
    topic: second < 0 ? text.slice(first + 1) : text.slice(first + 1, second),
    payload: second < 0 ? "" : text.slice(second + 1),
  };
}

// The payload of an "err" frame, "<code> <text>" (PROTOCOL-EXTENSIONS.md),
// as close event fields; 1011 (unexpected condition) when it has no code.
function parseNotice(payload) {
  const match = /^(\d+)(?: ([\s\S]*))?$/.exec(payload);
  if (match === null) {
    return { code: 1011, reason: payload };
  }
  return { code: Number(match[1]), reason: match[2] === undefined ? "" : match[2] };
}

function closeDetails(event) {
  return {
    code: typeof event.code === "number" ? event.code : 1006,
    reason: typeof event.reason === "string" && event.reason
      ? event.reason : "connection closed",
    wasClean: !!event.wasClean,
  };
}

// Validate the `reconnect` option: null (off) or complete settings.
function reconnectSettings(option) {
  if (option === false || option === null) {
    return null;
  }
  const given = option === undefined || option === true ? {} : option;
  if (typeof given !== "object") {
    throw new TypeError("websocket-multiplex: reconnect must be a boolean or an object");
  }
  const settings = {};
  for (const key of Object.keys(RECONNECT_DEFAULTS)) {
    const value = given[key] === undefined ? RECONNECT_DEFAULTS[key] : given[key];
    if (typeof value !== "number" || !(value >= 0)) {
      throw new TypeError("websocket-multiplex: reconnect." + key +
                          " must be a number >= 0, not " + String(value));
    }
    settings[key] = value;
  }
  return settings;
}

// Validate the `maxQueue` option: a number >= 0 (Infinity: no bound).
function queueLimit(option) {
  if (option === undefined) {
    return MAX_QUEUE_DEFAULT;
  }
  if (typeof option !== "number" || !(option >= 0)) {
    throw new TypeError("websocket-multiplex: maxQueue must be a number >= 0, not " +
                        String(option));
  }
  return option;
}

function queueFull(limit) {
  const error = new Error("websocket-multiplex: send queue full (maxQueue " +
                          String(limit) + " messages) while the connection is " +
                          "down; this message was not sent");
  error.name = "QueueFullError";
  return error;
}

// Request/reply (docs/PROTOCOL-EXTENSIONS.md, section 5).
const REQUEST_TIMEOUT = 10000;     // ms a request waits for its reply by default
const MAX_OUTSTANDING_DEFAULT = 64;

function requestError(name, code, text) {
  const error = new Error("websocket-multiplex: request failed: " + String(code) +
                          " " + text);
  error.name = name;
  error.code = code;
  error.text = text;
  return error;
}

// Validate a count option: a number >= 0 (Infinity: no bound).
function countLimit(option, name, fallback) {
  if (option === undefined) {
    return fallback;
  }
  if (typeof option !== "number" || !(option >= 0)) {
    throw new TypeError("websocket-multiplex: " + name + " must be a number >= 0, not " +
                        String(option));
  }
  return option;
}

// "<id>,<rest>" of a req/rep/rer payload, or null for an id that is not
// 1 to 16 digits.
function parseRequestId(payload) {
  const match = /^(\d{1,16})(?:,([\s\S]*))?$/.exec(payload);
  if (match === null) {
    return null;
  }
  return { id: match[1], rest: match[2] === undefined ? "" : match[2] };
}

/**
 * A request from the service (channel.onrequest gets it): answer it once,
 * with reply(text) or fail(text, code).
 */
class MultiplexRequest {
  constructor(channel, id, data) {
    this.channel = channel;
    this.id = id;
    this.data = data;
    this.answered = false;
  }

  reply(data) {
    this._answer("rep," + this.channel.topic + "," + this.id + "," + String(data));
  }

  fail(text, code) {
    const number = code === undefined ? 400 : code;
    if (!(Number.isInteger(number) && number >= 100 && number <= 999)) {
      throw new TypeError("websocket-multiplex: a request's error code has three " +
                          "digits, not " + String(code));
    }
    this._answer("rer," + this.channel.topic + "," + this.id + "," + String(number) +
                 " " + String(text === undefined ? "" : text));
  }

  _answer(frame) {
    if (this.answered) {
      throw new Error("websocket-multiplex: request " + this.id + " was answered " +
                      "already: answer each request once");
    }
    this.answered = true;
    this.channel._answer(this, frame);
  }
}

// Full jitter: a random delay below the exponential ceiling.
function backoffDelay(settings, attempt) {
  const ceiling = Math.min(settings.maxDelay,
                           settings.initialDelay * Math.pow(2, attempt - 1));
  return Math.floor(Math.random() * ceiling);
}

// Resumable sessions (docs/PROTOCOL-EXTENSIONS.md, section 3).
const ACK_EVERY = 32;           // acknowledge after this many frames...
const ACK_DELAY = 50;           // ... or this many ms after the first
const LOST_ANSWER = "websocket-multiplex: an answer went missing; resuming";
const HELLO_TIMEOUT = 10000;    // ms to wait for the answer to a resume
const RESUME_BUFFER = 4 << 20;  // characters kept unacknowledged, at most
// Characters written and not yet acknowledged, at most (one message more
// when none is): sockjs-client sends everything pending in one request,
// which the server refuses above its max_message_size (1 MiB). The window
// adapts, as TCP's does: it halves when a socket is lost with frames in
// flight (a network that cuts long requests would cut every resend of a
// large window whole, and nothing would ever get through), and grows by
// what each ack acknowledges.
const WINDOW_START = 32 << 10;
const WINDOW_MIN = 4 << 10;
const WINDOW_MAX = 128 << 10;
const GOODBYE = "hey,r1,bye";

function newToken() {
  const bytes = new Uint8Array(18);
  crypto.getRandomValues(bytes);
  let text = "";
  for (const byte of bytes) {
    text += String.fromCharCode(byte);
  }
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_");
}

// A "hey" frame: {token, received} (received null for an offer), or null.
function parseHello(text) {
  const match = /^hey,r1,([A-Za-z0-9_-]{1,64})(?:,(\d{1,18}))?$/.exec(text);
  if (match === null || match[1] === "bye") {
    return null;
  }
  return { token: match[1], received: match[2] === undefined ? null : Number(match[2]) };
}

/**
 * One side's ledger of a resumable session: the frames sent and not yet
 * acknowledged (to resend on a new socket), and how many of the server's
 * frames arrived (to acknowledge). `offer` is "offered" until the server
 * answers (then "on"), or "off" when the server does not take part.
 */
class ResumeSession {
  constructor() {
    this.offer = "offered";
    this.offerSent = false;  // the offer went out: the server may hold it
    this.token = newToken();
    this.window = WINDOW_START;  // the network's, kept across sessions
    this._fresh();
  }

  _fresh() {
    this.sent = 0;        // frames sent: the number of the last one
    this.written = 0;     // of them, how many went to a socket
    this.inflight = 0;    // characters of frames acked+1 .. written
    this.acked = 0;       // of them, how many the server has
    this.kept = [];       // frames acked+1 .. sent
    this.keptChars = 0;
    this.received = 0;    // the server's frames received
    this.told = 0;        // of them, how many were acknowledged
  }

  get on() {
    return this.offer === "on";
  }

  // Whether a new socket resumes (else it offers, or is the base protocol).
  get resuming() {
    return this.on || (this.offer === "offered" && this.offerSent);
  }

  hello() {
    if (this.resuming) {
      this.told = this.received;
      return "hey,r1," + this.token + "," + String(this.received);
    }
    this.offerSent = true;
    return "hey,r1," + this.token;
  }

  record(frame) {
    if (this.offer === "off") {
      return;
    }
    this.sent += 1;
    this.kept.push(frame);
    this.keptChars += frame.length;
    if (this.offer === "offered" && this.keptChars > RESUME_BUFFER) {
      return this.giveUp();  // no answer and this much sent: not ours
    }
    return null;
  }

  // The frames to write now: those not written yet, within the window.
  toWrite() {
    const frames = [];
    while (this.written < this.sent) {
      const frame = this.kept[this.written - this.acked];
      if (this.inflight > 0 && this.inflight + frame.length > this.window) {
        break;
      }
      frames.push(frame);
      this.inflight += frame.length;
      this.written += 1;
    }
    return frames;
  }

  // A new socket: everything not acknowledged is to be written again.
  rewind() {
    if (this.written > this.acked) {  // the lost socket had frames in flight
      this.window = Math.max(WINDOW_MIN, this.window >> 1);
    }
    this.written = this.acked;
    this.inflight = 0;
  }

  // An ack from the server, or what it says it has in a resume answer.
  acknowledged(count) {
    if (!(this.acked <= count && count <= this.sent)) {
      return false;
    }
    if (count > this.written) {
      return false;  // it cannot have what never went out
    }
    const gone = this.kept.splice(0, count - this.acked);
    let chars = 0;
    for (const frame of gone) {
      chars += frame.length;
    }
    this.keptChars -= chars;
    this.inflight -= chars;
    this.window = Math.min(WINDOW_MAX, this.window + chars);
    this.acked = count;
    return true;
  }

  // A numbered frame arrived: the ack to send now, if one is due.
  arrived() {
    this.received += 1;
    return this.received - this.told >= ACK_EVERY ? this.ack() : null;
  }

  ack() {
    if (this.received === this.told) {
      return null;
    }
    this.told = this.received;
    return "ack," + String(this.told);
  }

  adopt(token) {
    this.token = token;
    this.offer = "on";
  }

  restart(token) {
    this.token = token;
    this.offer = "on";
    this._fresh();
  }

  // The server does not take part: returns the frames kept and not yet
  // written, which go out now without the session.
  giveUp() {
    const unwritten = this.kept.slice(this.written - this.acked);
    this.offer = "off";
    this._fresh();
    return unwritten;
  }

  // The messages kept that never went to any socket: sent while it was
  // down. A session the server lost sends them again after the channels
  // subscribe again, as a base reconnection sends its queue.
  unwritten() {
    return this.kept.slice(this.kept.length - (this.sent - this.written))
      .filter(function (frame) { return frame.startsWith("msg,"); });
  }
}

function isBinary(data) {
  return (typeof ArrayBuffer !== "undefined" &&
          (data instanceof ArrayBuffer || ArrayBuffer.isView(data))) ||
         (typeof Blob !== "undefined" && data instanceof Blob);
}

/**
 * The listener part of EventTarget, plus the on<type> handler properties.
 * Listeners are kept per type in a Map; on<type> runs first, then the
 * listeners in the order they were added.
 */
class MultiplexEventTarget {
  constructor(types) {
    this._listeners = new Map();
    for (const type of types) {
      this["on" + type] = null;
    }
  }

  addEventListener(type, listener, options) {
    if (listener == null) {
      return;
    }
    const once = typeof options === "object" && options !== null && !!options.once;
    let entries = this._listeners.get(type);
    if (entries === undefined) {
      entries = [];
      this._listeners.set(type, entries);
    }
    for (const entry of entries) {
      if (entry.listener === listener) {
        return;  // DOM semantics: adding the same listener twice is a no-op
      }
    }
    entries.push({ listener: listener, once: once });
  }

  removeEventListener(type, listener) {
    const entries = this._listeners.get(type);
    if (entries === undefined) {
      return;
    }
    const index = entries.findIndex(function (entry) {
      return entry.listener === listener;
    });
    if (index >= 0) {
      entries.splice(index, 1);
    }
  }

  dispatchEvent(event) {
    event.target = this;
    event.currentTarget = this;
    const handler = this["on" + event.type];
    if (typeof handler === "function") {
      this._call(handler, event);
    }
    const entries = this._listeners.get(event.type);
    if (entries === undefined) {
      return true;
    }
    for (const entry of entries.slice()) {
      if (entry.once) {
        this.removeEventListener(event.type, entry.listener);
      }
      this._call(entry.listener, event);
    }
    return true;
  }

  _call(listener, event) {
    try {
      if (typeof listener === "function") {
        listener.call(this, event);
      } else if (listener && typeof listener.handleEvent === "function") {
        listener.handleEvent(event);
      }
    } catch (error) {
      reportHandlerError(error);
    }
  }
}

/**
 * One virtual channel; behaves like a WebSocket carrying text.
 *
 * Made by WebSocketMultiplex.channel(). readyState goes CONNECTING -> OPEN
 * -> CLOSING -> CLOSED (or straight to CLOSED when the server or the
 * socket closes it); "open" fires at most once, "close" exactly once,
 * "reconnect" after each reconnection while it is open.
 */
class MultiplexChannel extends MultiplexEventTarget {
  constructor(multiplexer, name, topic) {
    super(["open", "message", "close", "reconnect", "gap", "presence"]);
    this._multiplexer = multiplexer;
    this.name = name;
    this.topic = topic;
    this._positions = new Map();  // group -> [epoch, offset] of its last message
    this.readyState = CONNECTING;
    this._queue = [];          // frames (msg, req) sent while not subscribed
    this._subscribed = false;  // "sub" is on the wire of the current socket
    this._notice = null;       // the server's "err" notice, until its "uns"
    this._members = new Map(); // group -> Set of member ids, from "prs" frames
    this.onrequest = null;     // answers the service's requests
    this._pending = new Map(); // request id -> {resolve, reject, timer}
    this._owed = new Set();    // ids of the service's requests not answered
    this._epoch = 0;           // the session the owed ones came in
    this._closeDetails = null; // its close event's code and reason, once closed
  }

  /**
   * Send the service a request: a Promise of its reply (see the header).
   * options.timeout in ms (default 10000; Infinity: none).
   */
  request(data, options) {
    if (isBinary(data)) {
      return Promise.reject(new TypeError("websocket-multiplex channels carry text only"));
    }
    const text = String(data);
    const given = options == null ? undefined : options.timeout;
    const timeout = given === undefined ? REQUEST_TIMEOUT : given;
    if (typeof timeout !== "number" || !(timeout >= 0)) {
      return Promise.reject(new TypeError(
        "websocket-multiplex: timeout must be a number of ms >= 0, not " + String(given)));
    }
    const that = this;
    return new Promise(function (resolve, reject) {
      const entry = { resolve: resolve, reject: reject, timer: null, id: null };
      if (timeout !== Infinity) {
        entry.timer = setTimeout(function () {
          that._settle(entry, requestError("RequestTimeoutError", 504,
                                           "no reply within " + String(timeout) + " ms"));
        }, timeout);
      }
      that._multiplexer._whenRequestsKnown(function (error) {
        that._ask(entry, text, error);
      });
    });
  }

  _ask(entry, text, error) {
    if (entry.settled) {
      return;  // timed out while the server's answer to the offer was awaited
    }
    if (this.readyState === CLOSING || this.readyState === CLOSED) {
      return this._settle(entry, this._closedError());
    }
    if (error !== null) {
      return this._settle(entry, error);
    }
    const multiplexer = this._multiplexer;
    if (this._pending.size >= multiplexer._maxOutstanding) {
      return this._settle(entry, requestError(
        "RequestFailedError", 429, String(this._pending.size) + " requests outstanding " +
        "on this channel, the most allowed (maxOutstandingRequests): await some first"));
    }
    entry.id = multiplexer._nextRequestId();
    this._pending.set(entry.id, entry);
    const frame = "req," + this.topic + "," + entry.id + "," + text;
    try {
      if (this._subscribed) {
        multiplexer._send(frame);
      } else {
        multiplexer._reserve();
        this._queue.push(frame);
      }
    } catch (failure) {
      this._settle(entry, failure);
    }
  }

  _settle(entry, error, reply) {
    if (entry.settled) {
      return;
    }
    entry.settled = true;
    clearTimeout(entry.timer);
    if (entry.id !== null) {
      this._pending.delete(entry.id);
    }
    if (error === null) {
      entry.resolve(reply);
    } else {
      entry.reject(error);
    }
  }

  _closedError() {
    const details = this._closeDetails ||
      { code: 1000, reason: "the channel is closed" };
    const error = requestError("ChannelClosedError", details.code, details.reason);
    error.message = "websocket-multiplex: channel " + JSON.stringify(this.name) +
      " closed with the request in flight: " + String(details.code) + " " + details.reason;
    return error;
  }

  /**
   * Send text to the service; queued until subscribed (throws when the
   * multiplexer's queue is full), dropped once closing.
   */
  send(data) {
    if (isBinary(data)) {
      throw new TypeError("websocket-multiplex channels carry text only");
    }
    const text = String(data);
    if (this.readyState === CLOSING || this.readyState === CLOSED) {
      return;  // dropped, as WebSocket.send drops it
    }
    const frame = "msg," + this.topic + "," + text;
    if (this._subscribed) {
      this._multiplexer._send(frame);
    } else {
      this._multiplexer._reserve();
      this._queue.push(frame);
    }
  }

  /**
   * Close the channel: sends "uns" if "sub" was sent, then fires "close"
   * asynchronously. code and reason (default 1000 and "") only appear in
   * this channel's close event: the protocol carries neither.
   */
  close(code, reason) {
    if (this.readyState === CLOSING || this.readyState === CLOSED) {
      return;
    }
    this._closing();
    this._multiplexer._forget(this);
    if (this._subscribed) {
      this._multiplexer._write("uns," + this.topic);
    }
    const that = this;
    const details = {
      code: code === undefined ? 1000 : code,
      reason: reason === undefined ? "" : String(reason),
      wasClean: true,
    };
    setTimeout(function () { that._closed(details); }, 0);
  }

  // -- called by the multiplexer -------------------------------------------

  // The socket is open: subscribe, then send what was queued. The open or
  // reconnect event follows (see _opened, _reconnected).
  _subscribe() {
    this._subscribed = true;
    this._multiplexer._write("sub," + this.topic);
    for (const frame of this._takeQueue()) {
      this._multiplexer._write(frame);
    }
  }

  // The socket is gone and another one is coming, or the server is
  // restarting (a 1001 notice): subscribe again on the next socket.
  _unsubscribed() {
    this._subscribed = false;
    this._notice = null;
  }

  // Empty the queue, giving its messages back to the multiplexer's count.
  _takeQueue() {
    const queue = this._queue;
    this._queue = [];
    this._multiplexer._release(queue.length);
    return queue;
  }

  _opened() {
    if (this.readyState !== CONNECTING) {
      return;
    }
    this.readyState = OPEN;
    this.dispatchEvent({ type: "open" });
  }

  _reconnected(lost) {
    if (this.readyState !== OPEN) {
      return;
    }
    this.dispatchEvent({
      type: "reconnect",
      code: lost.code,
      reason: lost.reason,
      wasClean: lost.wasClean,
      recovered: false,
    });
  }

  _received(payload) {
    this._opened();  // a frame can beat the open event's timer
    this.dispatchEvent({ type: "message", data: payload });
  }

  /**
   * Where this channel stands in each group whose messages came with their
   * place in the group's history (PROTOCOL-EXTENSIONS.md, section 4): what
   * it tells a server that could not resume its session. A copy.
   */
  get positions() {
    const positions = {};
    for (const [group, position] of this._positions) {
      positions[group] = { epoch: position[0], offset: position[1] };
    }
    return positions;
  }

  // A "pub" frame: a group message and its place in the group's history.
  _published(payload) {
    const match = PUBLICATION.exec(payload);
    if (match === null) {
      return;
    }
    const group = unescape(match[1]);
    if (this._positions.has(group) || this._positions.size < MAX_POSITIONS) {
      this._positions.set(group, [match[2], match[3]]);
    }
    this._opened();
    this.dispatchEvent({ type: "message", data: match[4], group: group });
  }

  // "pos" frames for a new session, before this channel's "sub".
  _positionFrames() {
    const frames = [];
    for (const [group, position] of this._positions) {
      frames.push("pos," + this.topic + "," + escape(group) + "," +
                  position[0] + "," + position[1]);
    }
    return frames;
  }

  // A "gap" frame: the group's history no longer held all that was missed.
  _gap(payload) {
    if (this.readyState === OPEN || this.readyState === CONNECTING) {
      this._opened();
      this.dispatchEvent({ type: "gap", group: unescape(payload), recovered: false });
    }
  }

  // A "prs" frame (PROTOCOL-EXTENSIONS.md, section 6): "<group>,+<member>"
  // joined, "-" left, "~" expired, "=" (or "!" after a gap) the members now.
  // Everything is escape()d, so commas only separate. A second snapshot of
  // a group is a gap whatever it says (the server lost its session).
  _presence(payload) {
    const comma = payload.indexOf(",");
    const mark = payload.charAt(comma + 1);
    const rest = payload.slice(comma + 2);
    if (comma < 0 || "+-~=!".indexOf(mark) < 0 || mark === "") {
      return;  // not ours: ignored, as unknown frames are
    }
    const group = unescape(payload.slice(0, comma));
    const known = this._members.get(group);
    const event = { type: "presence", group: group, kind: "snapshot",
                    member: null, reason: null, gap: false, members: [] };
    if (mark === "=" || mark === "!") {
      const members = rest === "" ? [] : rest.split(",").map(unescape);
      this._members.set(group, new Set(members));
      event.gap = mark === "!" || known !== undefined;
    } else {
      if (rest === "") {
        return;
      }
      const members = known === undefined ? new Set() : known;
      this._members.set(group, members);
      event.member = unescape(rest);
      if (mark === "+") {
        event.kind = "joined";
        members.add(event.member);
      } else {
        event.kind = "left";
        event.reason = mark === "~" ? "expired" : "left";
        members.delete(event.member);
      }
    }
    event.members = Array.from(this._members.get(group)).sort();
    this.dispatchEvent(event);
  }

  // "uns" from the server: a refusal if an "err" came first (but 1001, a
  // shutdown, is not one).
  _unsubscribedByServer() {
    const notice = this._notice;
    if (notice === null) {
      this._opened();  // as the original: "open" (if pending), then "close"
      this._closed({ code: 1000, reason: "closed by server", wasClean: true });
    } else {
      this._closed({ code: notice.code, reason: notice.reason, wasClean: true,
                     refused: notice.code !== GOING_AWAY });
    }
  }

  // Every request in flight fails with `error`; the service's unanswered
  // ones are forgotten (nobody waits for them any more).
  _failRequests(error) {
    for (const entry of Array.from(this._pending.values())) {
      this._settle(entry, error);
    }
    this._owed.clear();
    this._epoch += 1;
  }

  // A "rep" or "rer" from the service; one for an id not awaited (timed
  // out) is ignored.
  _replied(type, payload) {
    const parsed = parseRequestId(payload);
    const entry = parsed === null ? undefined : this._pending.get(parsed.id);
    if (entry === undefined) {
      return;
    }
    if (type === "rep") {
      this._settle(entry, null, parsed.rest);
    } else {
      const notice = parseNotice(parsed.rest);
      this._settle(entry, requestError("RequestFailedError",
                                       notice.code === 1011 ? 500 : notice.code,
                                       notice.reason));
    }
  }

  // A "req" from the service: onrequest answers it, or 501 at once.
  _requested(payload) {
    const parsed = parseRequestId(payload);
    if (parsed === null || this._owed.has(parsed.id)) {
      return;  // malformed, or a copy of one not answered yet
    }
    const multiplexer = this._multiplexer;
    const id = parsed.id;
    if (this._owed.size >= multiplexer._maxOutstanding) {
      multiplexer._send("rer," + this.topic + "," + id + ",429 too many requests");
      return;
    }
    this._owed.add(id);
    const request = new MultiplexRequest(this, id, parsed.rest);
    request._epoch = this._epoch;
    const handler = this.onrequest;
    if (typeof handler !== "function") {
      request.fail("this channel answers no requests", 501);
      return;
    }
    this._opened();  // a frame can beat the open event's timer
    let result;
    try {
      result = handler.call(this, request);
    } catch (error) {
      reportHandlerError(error);
      if (!request.answered) {
        request.fail("the page's request handler failed", 500);
      }
      return;
    }
    if (result && typeof result.then === "function") {
      result.then(function (value) {
        if (!request.answered && value !== undefined) {
          request.reply(value);
        }
      }, function (error) {
        reportHandlerError(error);
        if (!request.answered) {
          request.fail("the page's request handler failed", 500);
        }
      });
    }
  }

  // Called by a MultiplexRequest: send its answer, if anyone still waits.
  _answer(request, frame) {
    if (request._epoch !== this._epoch || !this._owed.delete(request.id) ||
        this.readyState === CLOSING || this.readyState === CLOSED) {
      return;
    }
    this._multiplexer._send(frame);
  }

  // No more frames for this channel: "close" is coming.
  _closing() {
    if (this.readyState !== CLOSED) {
      this.readyState = CLOSING;
    }
    this._takeQueue();
  }

  _closed(details) {
    if (this.readyState === CLOSED) {
      return;
    }
    this.readyState = CLOSED;
    this._takeQueue();
    this._closeDetails = details;
    this._failRequests(this._closedError());
    this.dispatchEvent({
      type: "close",
      code: details.code,
      reason: details.reason,
      wasClean: details.wasClean,
      refused: !!details.refused,
    });
  }
}

for (const target of [MultiplexChannel, MultiplexChannel.prototype]) {
  target.CONNECTING = CONNECTING;
  target.OPEN = OPEN;
  target.CLOSING = CLOSING;
  target.CLOSED = CLOSED;
}

/**
 * Multiplexes channels over a socket: a SockJS object or a WebSocket, open
 * or still connecting, or a function that makes one (then it reconnects,
 * see options.reconnect). Channels subscribe once the socket is open, and
 * all close when the multiplexer closes. options.maxQueue bounds the sends
 * queued meanwhile.
 */
class WebSocketMultiplex extends MultiplexEventTarget {
  constructor(sock, options) {
    super(["open", "reconnecting", "close"]);
    const reconnect = options == null ? undefined : options.reconnect;
    this._factory = typeof sock === "function" ? sock : null;
    if (this._factory === null && reconnect !== undefined && reconnect !== false) {
      throw new TypeError("websocket-multiplex: reconnect needs a function that " +
                          "makes the socket, e.g. () => new SockJS(url)");
    }
    this._reconnect = this._factory === null ? null : reconnectSettings(reconnect);
    this._maxQueue = queueLimit(options == null ? undefined : options.maxQueue);
    this._maxOutstanding = countLimit(
      options == null ? undefined : options.maxOutstandingRequests,
      "maxOutstandingRequests", MAX_OUTSTANDING_DEFAULT);
    this._requestIds = 0;        // the last request id given
    this._requestsOn = false;    // the session carries requests
    this._requestWaiters = [];   // requests made before the offer was answered
    const resume = options == null || options.resume === undefined ? true : options.resume;
    // Resumable sessions need reconnection (a plain socket never comes back).
    this._session = resume && this._reconnect !== null &&
      this._reconnect.maxAttempts > 0 ? new ResumeSession() : null;
    this._answerTimer = null;    // waiting for the answer to a resume
    this._ackTimer = null;
    if (this._session !== null && typeof addEventListener === "function") {
      // A page going away says goodbye, so that the server does not keep
      // its session (and its channels' group memberships) for nothing.
      const that = this;
      addEventListener("pagehide", function (e) {
        if (!e.persisted) { that._goodbye(); }
      });
    }
    this._queued = 0;            // messages in the channels' queues
    this._channels = new Map();  // topic -> open or opening channel
    this._instances = 0;         // the last instance id given
    this._everOpened = false;    // a socket has been open
    this._attempt = 0;           // reconnection attempts since the last open
    this._timer = null;          // the pending reconnection
    this._lost = null;           // what closed the socket the gap began with
    this._lastClose = null;      // the close details, once closed for good
    this._sock = null;
    this._carried = 0;
    this._pastHole = false;
    this._attach(this._factory === null ? sock : this._factory());
    // A socket given open fires no "open": channels subscribe at once.
    this._everOpened = this._sock.readyState === OPEN;
  }

  /** The current socket, under the original client's name for it. */
  get ws() {
    return this._sock;
  }

  get socket() {
    return this._sock;
  }

  /**
   * CONNECTING while the socket connects or a reconnection is pending,
   * OPEN, CLOSING while the socket closes, CLOSED for good.
   */
  get readyState() {
    if (this._lastClose !== null) {
      return CLOSED;
    }
    if (this._timer !== null) {
      return CONNECTING;
    }
    return this._sock.readyState;
  }

  /**
   * Open a channel to the service `name`. If this multiplexer already has
   * an open channel of that name, the new one gets its own instance topic.
   */
  channel(name) {
    name = String(name);
    let topic = escape(name);
    if (this._channels.has(topic)) {
      this._instances += 1;
      topic += "#" + this._instances.toString(36);
    }
    const channel = new MultiplexChannel(this, name, topic);
    const state = this._sock.readyState;
    if (this._lastClose === null && this._timer === null && state === OPEN) {
      this._channels.set(topic, channel);
      channel._subscribe();
      // Let the caller attach onopen first; an incoming frame for this
      // channel opens it earlier (see _received).
      setTimeout(function () { channel._opened(); }, 0);
    } else if (this._lastClose === null && (state === CONNECTING || this._reconnect)) {
      this._channels.set(topic, channel);
    } else {
      const details = this._lastClose ||
        { code: 1006, reason: "the socket is closed", wasClean: false };
      channel._closing();
      setTimeout(function () { channel._closed(details); }, 0);
    }
    return channel;
  }

  /**
   * Close every channel and the socket, and stop reconnecting. The
   * channels' and the multiplexer's close events carry code and reason
   * (default 1000 and ""); the socket gets them too when it accepts them.
   */
  close(code, reason) {
    if (this._lastClose !== null) {
      return;
    }
    const details = {
      code: code === undefined ? 1000 : code,
      reason: reason === undefined ? "" : String(reason),
      wasClean: true,
    };
    const channels = this._takeChannels(details);
    const sock = this._sock;
    this._goodbye();  // the server need not keep the session
    if (sock.readyState === CONNECTING || sock.readyState === OPEN) {
      closeSocket(sock, code, reason);
    }
    const that = this;
    setTimeout(function () { that._closeAll(channels, details); }, 0);
  }

  _goodbye() {
    const session = this._session;
    if (session !== null && session.on && this._sock.readyState === OPEN) {
      this._sock.send(GOODBYE);
      session.giveUp();  // said once: nothing more is resumed
      this._requestsChanged(false);
    }
  }

  // -- socket events ---------------------------------------------------------

  // Listen to a new socket; a socket that closed, or was replaced, is
  // not heard any more.
  _attach(sock) {
    this._sock = sock;
    this._carried = 0;  // messages this socket brought ("seq" checks them)
    this._pastHole = false;  // a "seq" showed a hole: nothing more is taken
    const that = this;
    let current = true;
    sock.addEventListener("open", function () {
      if (current && that._sock === sock) { that._socketOpened(); }
    });
    sock.addEventListener("message", function (e) {
      if (current && that._sock === sock) { that._socketMessage(e); }
    });
    sock.addEventListener("close", function (e) {
      if (current && that._sock === sock) {
        current = false;
        that._socketClosed(e);
      }
    });
  }

  _socketOpened() {
    if (this._lastClose !== null) {
      return;
    }
    const session = this._session;
    if (session !== null && session.offer !== "off") {
      if (session.resuming) {
        // Say where we are; nothing else goes out until the answer.
        this._sock.send(session.hello());
        const that = this;
        this._answerTimer = setTimeout(function () {
          that._answered(null);
        }, HELLO_TIMEOUT);
        return;
      }
      this._sock.send(session.hello());  // the offer; subscriptions follow
    }
    this._subscribeAll(false);
  }

  // The server's answer to a resume (null: none came in time).
  _answered(text) {
    clearTimeout(this._answerTimer);
    this._answerTimer = null;
    const session = this._session;
    const answer = text === null ? null : parseHello(text);
    const unwritten = session.unwritten();
    if (answer === null || answer.received === null) {
      // A server that does not resume (any more): the base protocol.
      session.giveUp();
      this._requestsChanged(false);
      this._unsubscribeAll();
      this._subscribeAll(false, unwritten);
      if (text !== null) {
        this._carried -= 1;  // counted already: it is handled once more
        this._socketMessage({ data: text });
      }
      return;
    }
    if (answer.token !== session.token) {
      // The server does not hold the session (it expired, the server
      // restarted, or the offer never reached it: it cannot tell which):
      // its handlers ended, ours subscribe again as in a base
      // reconnection, and only what never went out is sent again.
      session.restart(answer.token);
      this._requestsChanged(true);
      this._unsubscribeAll();
      this._subscribeAll(false, unwritten, true);
      return;
    }
    session.adopt(answer.token);  // resumed
    if (!session.acknowledged(answer.received)) {
      session.giveUp();  // it cannot be right: begin afresh, the base way
      this._requestsChanged(false);
      this._unsubscribeAll();
      this._subscribeAll(false, unwritten);
      return;
    }
    session.rewind();
    this._flush();
    this._subscribeAll(true);
  }

  _unsubscribeAll() {
    for (const channel of this._channels.values()) {
      channel._unsubscribed();
    }
  }

  // Subscribe the channels that are not, fire "open" (and those channels'
  // "open" or "reconnect"). `resumed`: the server resumed the session, so
  // the channels that stayed subscribed lost nothing and hear nothing.
  // `unwritten`: messages of a lost session that never went out, to send
  // after the subscriptions (for the channels still open). `present`: a
  // new session with a server of ours: each channel's group positions go
  // before its "sub", so that what it missed is replayed.
  _subscribeAll(resumed, unwritten, present) {
    const reconnected = this._everOpened;
    const lost = this._lost;
    this._everOpened = true;
    this._attempt = 0;
    this._lost = null;
    const waiting = Array.from(this._channels.values()).filter(function (c) {
      return !c._subscribed;
    });
    for (const channel of waiting) {
      if (present) {
        for (const frame of channel._positionFrames()) {
          this._write(frame);
        }
      }
      channel._subscribe();
    }
    for (const frame of unwritten || []) {
      const open = this._channels.get(parseFrame(frame).topic);
      if (open !== undefined && open._subscribed) {
        this._write(frame);
      }
    }
    this.dispatchEvent({ type: "open", reconnected: reconnected, resumed: !!resumed });
    for (const channel of waiting) {
      if (channel.readyState === CONNECTING) {
        channel._opened();
      } else if (lost !== null) {
        channel._reconnected(lost);
      }
    }
  }

  _socketMessage(event) {
    if (typeof event.data !== "string") {
      return;  // binary WebSocket frames are not multiplex frames
    }
    const session = this._session;
    if (session !== null && session.offer !== "off") {
      if (this._pastHole) {
        return;  // it would be counted as arrived: the server resends it
      }
      if (event.data.startsWith("seq,")) {
        // "This socket brought you n messages before": an answer went
        // missing without a cut (a request the browser sent again): go on
        // over a new socket, where the session resends what is missing.
        // The rest of this answer comes past the hole: it is not taken.
        const match = /^seq,(\d{1,18})$/.exec(event.data);
        if (match === null || Number(match[1]) !== this._carried) {
          this._pastHole = true;
          this._sock.close(1000, LOST_ANSWER);
        }
        return;
      }
      this._carried += 1;
      if (this._answerTimer !== null) {
        this._answered(event.data);
        return;
      }
      if (!session.on) {  // the first frame after the offer
        const answer = parseHello(event.data);
        if (answer !== null && answer.received === 0) {
          session.adopt(answer.token);
          this._requestsChanged(false);
          return;
        }
        this._writeNow(session.giveUp());  // not a server of ours
        this._requestsChanged(false);
      } else if (event.data.startsWith("ack,") || event.data.startsWith("hey,")) {
        const match = /^ack,(\d{1,18})$/.exec(event.data);
        if (match !== null && session.acknowledged(Number(match[1]))) {
          this._flush();
        }
        return;
      } else {
        this._acknowledge(session.arrived());
      }
    }
    const frame = parseFrame(event.data);
    if (frame === null) {
      return;
    }
    const channel = this._channels.get(frame.topic);
    if (channel === undefined) {
      return;
    }
    if (frame.type === "msg") {
      channel._received(frame.payload);
    } else if (frame.type === "pub" && session !== null && session.on) {
      channel._published(frame.payload);
    } else if (frame.type === "gap" && session !== null && session.on) {
      channel._gap(frame.payload);
    } else if (frame.type === "prs" && session !== null && session.on) {
      channel._presence(frame.payload);  // only our server, on a session
    } else if (frame.type === "err") {
      channel._notice = parseNotice(frame.payload);
    } else if (frame.type === "uns") {
      const notice = channel._notice;
      if (notice !== null && notice.code === GOING_AWAY && this._reconnects()) {
        // A graceful restart: keep the channel, subscribe it again on the
        // next socket (once this one closes).
        channel._unsubscribed();
      } else {
        this._channels.delete(frame.topic);
        channel._unsubscribedByServer();
      }
    } else if (this._requestsOn) {
      if (frame.type === "req") {
        channel._requested(frame.payload);
      } else if (frame.type === "rep" || frame.type === "rer") {
        channel._replied(frame.type, frame.payload);
      }
    }
  }

  // -- requests (docs/PROTOCOL-EXTENSIONS.md, section 5) ----------------------

  _nextRequestId() {
    this._requestIds += 1;
    return String(this._requestIds);
  }

  // Call `then(error)` once it is known whether the connection carries
  // requests: error null if it does, else why not.
  _whenRequestsKnown(then) {
    const session = this._session;
    if (session !== null && session.offer === "offered" && this._lastClose === null) {
      this._requestWaiters.push(then);
      return;
    }
    then(this._requestsOn ? null : this._notSupported());
  }

  _notSupported() {
    const why = this._session === null
      ? "this multiplexer has no resumable session ({resume: false}, or a socket " +
        "instead of a function that makes one)"
      : "the server speaks only the base protocol (the original server?)";
    const error = requestError("RequestsNotSupportedError", 501,
                               "requests need our server and a resumable session: " +
                               why + "; send messages instead");
    error.message = "websocket-multiplex: " + error.text;
    return error;
  }

  // The session changed: on (`fresh`: a new one, not resumed), or off.
  // Requests in flight on a session that is gone fail with 502.
  _requestsChanged(fresh) {
    const session = this._session;
    const on = session !== null && session.on && this._lastClose === null;
    if (this._requestsOn && (fresh || !on)) {
      const lost = requestError("RequestFailedError", 502,
        "the connection was replaced and its session not resumed: the request " +
        "may or may not have been answered");
      for (const channel of this._channels.values()) {
        channel._failRequests(lost);
      }
    }
    this._requestsOn = on;
    if (session === null || session.offer !== "offered" || this._lastClose !== null) {
      const waiters = this._requestWaiters;
      this._requestWaiters = [];
      for (const then of waiters) {
        then(on ? null : this._notSupported());
      }
    }
  }

  // Another socket will come when this one closes.
  _reconnects() {
    return this._reconnect !== null && this._reconnect.maxAttempts > 0 &&
      this._lastClose === null;
  }

  _socketClosed(event) {
    if (this._lastClose !== null) {
      return;  // closed for good already (multiplexer.close())
    }
    const details = closeDetails(event);
    const settings = this._reconnect;
    if (settings === null || this._attempt >= settings.maxAttempts) {
      this._closeAll(this._takeChannels(details), details);
      return;
    }
    if (this._lost === null) {
      this._lost = details;
    }
    clearTimeout(this._answerTimer);
    this._answerTimer = null;
    const session = this._session;
    if (session === null || !session.resuming) {
      this._unsubscribeAll();
    }  // else the channels stay subscribed: their frames are kept, resent
    this._attempt += 1;
    const attempt = this._attempt;
    const delay = backoffDelay(settings, attempt);
    const that = this;
    this._timer = setTimeout(function () { that._connectAgain(); }, delay);
    this.dispatchEvent({
      type: "reconnecting",
      attempt: attempt,
      delay: delay,
      code: details.code,
      reason: details.reason,
      wasClean: details.wasClean,
    });
  }

  _connectAgain() {
    this._timer = null;
    if (this._lastClose !== null) {
      return;
    }
    let sock;
    try {
      sock = this._factory();
    } catch (error) {
      reportHandlerError(error);
      this._socketClosed({ code: 1006, reason: "the socket factory threw: " +
                           String(error && error.message), wasClean: false });
      return;
    }
    this._attach(sock);
    if (sock.readyState === OPEN) {
      this._socketOpened();
    } else if (sock.readyState === CLOSED) {
      this._socketClosed({ code: 1006, reason: "", wasClean: false });
    }
  }

  // Closed for good: no channel sends or receives any more.
  _takeChannels(details) {
    this._lastClose = details;
    clearTimeout(this._answerTimer);
    clearTimeout(this._ackTimer);
    this._answerTimer = this._ackTimer = null;
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    const channels = Array.from(this._channels.values());
    this._channels.clear();
    for (const channel of channels) {
      channel._closing();
    }
    this._requestsChanged(false);
    return channels;
  }

  _closeAll(channels, details) {
    for (const channel of channels) {
      channel._closed(details);
    }
    this.dispatchEvent({
      type: "close",
      code: details.code,
      reason: details.reason,
      wasClean: details.wasClean,
    });
  }

  // -- called by channels ------------------------------------------------------

  // A numbered frame (sub, msg, uns): kept by the session, if any, and
  // sent if the socket can take it now (else a resume resends it).
  _write(frame) {
    if (this._lastClose !== null) {
      return;
    }
    const session = this._session;
    if (session === null || session.offer === "off") {
      this._writeNow([frame]);
      return;
    }
    const spilled = session.record(frame);
    if (spilled !== null) {
      this._writeNow(spilled);
      this._requestsChanged(false);
    } else {
      this._flush();
    }
  }

  _writeNow(frames) {
    if (this._sock.readyState === OPEN && this._answerTimer === null) {
      for (const frame of frames) {
        this._sock.send(frame);
      }
    }
  }

  // Write what the session's window lets through (more as acks come).
  _flush() {
    const session = this._session;
    if (session !== null && this._sock.readyState === OPEN &&
        this._answerTimer === null) {
      for (const frame of session.toWrite()) {
        this._sock.send(frame);
      }
    }
  }

  // A message of a subscribed channel: while a resumable session waits for
  // its next socket, it is kept (bounded), else written.
  _send(frame) {
    const session = this._session;
    if (session !== null && session.on && session.keptChars + frame.length >
        RESUME_BUFFER && this._sock.readyState !== OPEN) {
      throw queueFull(this._maxQueue);
    }
    this._write(frame);
  }

  _acknowledge(ack) {
    if (ack !== null) {
      if (this._sock.readyState === OPEN) {
        this._sock.send(ack);
      }
    } else if (this._ackTimer === null) {
      const that = this;
      this._ackTimer = setTimeout(function () {
        that._ackTimer = null;
        const due = that._session === null ? null : that._session.ack();
        if (due !== null && that._sock.readyState === OPEN &&
            that._answerTimer === null) {
          that._sock.send(due);
        }
      }, ACK_DELAY);
    }
  }

  _forget(channel) {
    if (this._channels.get(channel.topic) === channel) {
      this._channels.delete(channel.topic);
    }
  }

  // Count one more queued message, or throw when the queue is full.
  _reserve() {
    if (this._queued >= this._maxQueue) {
      throw queueFull(this._maxQueue);
    }
    this._queued += 1;
  }

  _release(count) {
    this._queued -= count;
  }
}

// Close a socket, passing code and reason on only if it accepts them
// (WebSocket and SockJS take 1000 and 3000-4999, a short reason).
function closeSocket(sock, code, reason) {
  if (typeof sock.close !== "function") {
    return;
  }
  if (code !== undefined) {
    try {
      sock.close(code, reason);
      return;
    } catch (error) {
      // refused code or reason: close without them
    }
  }
  sock.close();
}

WebSocketMultiplex.Channel = MultiplexChannel;

// --- END BODY ---
return WebSocketMultiplex;
})();
