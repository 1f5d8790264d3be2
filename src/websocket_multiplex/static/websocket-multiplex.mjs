// Generated from websocket-multiplex.js by scripts/build_client.py;
// do not edit: change the classic script and run the script again.
/*
 * websocket-multiplex browser client: many virtual channels over one
 * SockJS connection or WebSocket. Wire-compatible with the JavaScript
 * websocket-multiplex 0.1.0 (see PROTOCOL.md); a drop-in for its
 * multiplex_client.js:
 *
 *     var multiplexer = new WebSocketMultiplex(new SockJS("/multiplex"));
 *     var ann = multiplexer.channel("ann");
 *     ann.onopen = function () { ann.send("hello"); };
 *     ann.onmessage = function (e) { console.log(e.data); };
 *     ann.onclose = function (e) { console.log("closed:", e.code, e.reason); };
 *
 * Where it differs from the original, on purpose:
 *
 * - Every open channel fires "close" (exactly once) when the socket
 *   closes; the event carries the socket's code, reason and wasClean.
 * - send() before the socket is open is queued and sent right after the
 *   channel's "sub" frame (the original throws while the socket is
 *   connecting). send() between "sub" and the open event goes straight out.
 * - send() on a CLOSING or CLOSED channel is silently dropped, as a
 *   WebSocket drops it: once a channel is closed, this client puts no
 *   frame for it on the wire (the original still sends them).
 * - channel(name) while a channel of that name is open on this
 *   multiplexer throws (the original silently orphaned the first one).
 * - channel.name is the name you passed; channel.topic is its wire form,
 *   escape(name) (the original called the escaped form "name").
 * - Topic names are looked up in a Map, so names such as "__proto__",
 *   "toString" or "constructor" are ordinary names.
 *
 * This file is the source; websocket-multiplex.mjs (the same code as an ES
 * module) is generated from it by scripts/build_client.py. Keep the code
 * between the two BODY markers free of anything that only works in a
 * classic script.
 */

// Socket and channel states, the same numbers as WebSocket and SockJS.
const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

// Report an exception thrown by an event handler without interrupting the
// dispatch to the other handlers and channels, as EventTarget does.
function reportHandlerError(error) {
  if (typeof reportError === "function") {
    reportError(error);
  } else {
    setTimeout(function () { throw error; }, 0);
  }
}

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
class ChannelEventTarget {
  constructor() {
    this._listeners = new Map();
    this.onopen = null;
    this.onmessage = null;
    this.onclose = null;
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
 * socket closes it); "open" fires at most once, "close" exactly once.
 */
class MultiplexChannel extends ChannelEventTarget {
  constructor(multiplexer, name, topic) {
    super();
    this._multiplexer = multiplexer;
    this.name = name;
    this.topic = topic;
    this.readyState = CONNECTING;
    this._queue = [];          // messages sent before the socket opened
    this._subscribed = false;  // "sub" is on the wire
  }

  /** Send text to the service; queued until subscribed, dropped once closing. */
  send(data) {
    if (isBinary(data)) {
      throw new TypeError("websocket-multiplex channels carry text only");
    }
    const text = String(data);
    if (this.readyState === CLOSING || this.readyState === CLOSED) {
      return;  // dropped, as WebSocket.send drops it
    }
    if (this._subscribed) {
      this._multiplexer._write("msg," + this.topic + "," + text);
    } else {
      this._queue.push(text);
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
    this.readyState = CLOSING;
    this._queue = [];
    this._multiplexer._forget(this);
    if (this._subscribed) {
      this._multiplexer._write("uns," + this.topic);
    }
    const that = this;
    const event = {
      code: code === undefined ? 1000 : code,
      reason: reason === undefined ? "" : String(reason),
      wasClean: true,
    };
    setTimeout(function () { that._closed(event); }, 0);
  }

  // -- called by the multiplexer -------------------------------------------

  // The socket is open: subscribe, then send what was queued. The open
  // event follows (see _opened).
  _subscribe() {
    this._subscribed = true;
    this._multiplexer._write("sub," + this.topic);
    const queue = this._queue;
    this._queue = [];
    for (const text of queue) {
      this._multiplexer._write("msg," + this.topic + "," + text);
    }
  }

  _opened() {
    if (this.readyState !== CONNECTING) {
      return;
    }
    this.readyState = OPEN;
    this.dispatchEvent({ type: "open" });
  }

  _received(payload) {
    this._opened();  // a frame can beat the open event's timer
    this.dispatchEvent({ type: "message", data: payload });
  }

  _closed(details) {
    if (this.readyState === CLOSED) {
      return;
    }
    this.readyState = CLOSED;
    this._queue = [];
    this.dispatchEvent({
      type: "close",
      code: details.code,
      reason: details.reason,
      wasClean: details.wasClean,
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
 * Multiplexes channels over `sock`: a SockJS object or a WebSocket, open
 * or still connecting. Channels subscribe once it is open, and all close
 * when it closes.
 */
export class WebSocketMultiplex {
  constructor(sock) {
    this._sock = sock;
    this._channels = new Map();  // topic -> open or opening channel
    this._lastClose = null;      // the socket's close event, once seen
    const that = this;
    sock.addEventListener("open", function () { that._socketOpened(); });
    sock.addEventListener("message", function (e) { that._socketMessage(e); });
    sock.addEventListener("close", function (e) { that._socketClosed(e); });
  }

  /** The socket, under the original client's name for it. */
  get ws() {
    return this._sock;
  }

  get socket() {
    return this._sock;
  }

  /**
   * Open a channel to the service `name`. Throws if this multiplexer has
   * a channel of that name that is not closing or closed.
   */
  channel(name) {
    name = String(name);
    const topic = escape(name);
    if (this._channels.has(topic)) {
      throw new Error(
        "websocket-multiplex: a channel named " + JSON.stringify(name) +
        " is already open on this connection; close it first");
    }
    const channel = new MultiplexChannel(this, name, topic);
    const state = this._sock.readyState;
    if (state === OPEN) {
      this._channels.set(topic, channel);
      channel._subscribe();
      // Let the caller attach onopen first; an incoming frame for this
      // channel opens it earlier (see _received).
      setTimeout(function () { channel._opened(); }, 0);
    } else if (state === CONNECTING) {
      this._channels.set(topic, channel);
    } else {
      const details = this._lastClose ||
        { code: 1006, reason: "the socket is closed", wasClean: false };
      setTimeout(function () { channel._closed(details); }, 0);
    }
    return channel;
  }

  // -- socket events ---------------------------------------------------------

  _socketOpened() {
    const opening = Array.from(this._channels.values()).filter(function (c) {
      return !c._subscribed;
    });
    for (const channel of opening) {
      channel._subscribe();
    }
    for (const channel of opening) {
      channel._opened();
    }
  }

  _socketMessage(event) {
    if (typeof event.data !== "string") {
      return;  // binary WebSocket frames are not multiplex frames
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
    } else if (frame.type === "uns") {
      channel._opened();
      this._channels.delete(frame.topic);
      channel._closed({ code: 1000, reason: "closed by server", wasClean: true });
    }
  }

  _socketClosed(event) {
    const details = {
      code: typeof event.code === "number" ? event.code : 1006,
      reason: typeof event.reason === "string" && event.reason
        ? event.reason : "connection closed",
      wasClean: !!event.wasClean,
    };
    this._lastClose = details;
    const channels = Array.from(this._channels.values());
    this._channels.clear();
    for (const channel of channels) {
      channel._closed(details);
    }
  }

  // -- called by channels ------------------------------------------------------

  _write(frame) {
    if (this._sock.readyState === OPEN) {
      this._sock.send(frame);
    }
  }

  _forget(channel) {
    if (this._channels.get(channel.topic) === channel) {
      this._channels.delete(channel.topic);
    }
  }
}

WebSocketMultiplex.Channel = MultiplexChannel;

export default WebSocketMultiplex;
