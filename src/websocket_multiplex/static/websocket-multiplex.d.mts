// Generated from websocket-multiplex.d.ts by scripts/build_client.py;
// do not edit: change websocket-multiplex.d.ts and run the script again.
//
// Type declarations for the ES module websocket-multiplex.mjs: named
// exports `WebSocketMultiplex` and `MultiplexChannel`, default export
// `WebSocketMultiplex`. TypeScript finds them next to the module.

/** What the multiplexer needs from its carrier: a SockJS object or a WebSocket. */
export interface MultiplexSocket {
  /** 0 connecting, 1 open, 2 closing, 3 closed (WebSocket and SockJS agree). */
  readonly readyState: number;
  send(data: string): void;
  /** Called by WebSocketMultiplex.close(). */
  close?(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (event: any) => void): void;
}

/** Makes a new socket, for the first connection and for each reconnection. */
export type MultiplexSocketFactory = () => MultiplexSocket;

/**
 * Automatic reconnection, for a multiplexer made with a socket factory.
 * Delays are in milliseconds. After a lost (or failed) socket, attempt n
 * waits a random delay in [0, min(maxDelay, initialDelay * 2^(n-1))):
 * exponential backoff with full jitter. n starts again from 1 once a
 * socket opens.
 */
export interface MultiplexReconnectOptions {
  /** The ceiling of the first delay. Default 500. */
  initialDelay?: number;
  /** The highest ceiling. Default 10000. */
  maxDelay?: number;
  /**
   * Failed attempts in a row before giving up (then every channel closes,
   * as with a plain socket). Default Infinity; 0 never reconnects.
   */
  maxAttempts?: number;
}

/** Options for a multiplexer over a socket or a socket factory. */
export interface MultiplexQueueOptions {
  /**
   * The most messages send() holds, for all the channels of the
   * multiplexer together, while they wait for a socket: before the first
   * open, during a reconnection gap, and after the server's 1001 (shutting
   * down) notice. Default 1000; Infinity for no bound; 0 never queues.
   * When it is full, send() throws an Error named "QueueFullError" and that
   * message is not queued (those queued before are kept and still go out).
   * A message leaves the count when it goes on the wire or its channel
   * closes. A number >= 0, or the constructor throws TypeError.
   */
  maxQueue?: number;
  /**
   * Requests in flight per channel (past it request() rejects 429 at once),
   * and the service's requests not answered yet (past it the service's
   * next one is answered 429). Default 64.
   */
  maxOutstandingRequests?: number;
}

/** Options of channel.request(). */
export interface MultiplexRequestOptions {
  /** Milliseconds to wait for the reply: default 10000; Infinity for none. */
  timeout?: number;
}

/**
 * Why a request got no reply, as the `name` of the Error it rejects with:
 * - "RequestFailedError": code 400 (or the service's own) refused, 429 too
 *   many requests in flight, 500 the service's handler failed, 501 it
 *   answers no requests, 502 the connection was replaced without resuming
 *   its session (it may or may not have been answered);
 * - "RequestTimeoutError": code 504, no reply within the timeout;
 * - "ChannelClosedError": the channel closed first (code and reason of its
 *   close event);
 * - "RequestsNotSupportedError": the connection has no resumable session
 *   (the original server, {resume: false}, a plain socket): nothing was sent.
 */
export interface MultiplexRequestError extends Error {
  name:
    | "RequestFailedError"
    | "RequestTimeoutError"
    | "ChannelClosedError"
    | "RequestsNotSupportedError";
  code: number;
  /** The answerer's words, or what happened. */
  text: string;
}

/** A request from the service, given to channel.onrequest: answer it once. */
export interface MultiplexRequest {
  readonly channel: MultiplexChannel;
  /** The service's id for it. */
  readonly id: string;
  readonly data: string;
  /** Whether reply() or fail() was called. */
  readonly answered: boolean;
  /** Answer with `data`; nothing is sent once the channel is closed. */
  reply(data: string): void;
  /**
   * Answer with an error: the service's request raises RequestFailed with
   * `code` (three digits, default 400) and `text`.
   */
  fail(text: string, code?: number): void;
}

/** Options with a plain socket: it never reconnects. */
export interface MultiplexSocketOptions extends MultiplexQueueOptions {
  /** Only false: a plain socket cannot reconnect (true throws TypeError). */
  reconnect?: false;
}

/** Options with a socket factory. */
export interface MultiplexOptions extends MultiplexQueueOptions {
  /**
   * Only with a socket factory, where it defaults to true (the defaults of
   * MultiplexReconnectOptions); false turns reconnection off. A plain
   * socket never reconnects: giving this option with one throws TypeError.
   */
  reconnect?: boolean | MultiplexReconnectOptions;
  /**
   * With reconnection, offer the server a resumable session (default true;
   * docs/PROTOCOL-EXTENSIONS.md, section 3). With our server, a lost
   * socket is then replaced by one that carries on exactly where it
   * stopped: nothing sent either way is lost or repeated, and the channels
   * fire no event at all. If the server no longer holds the session, the
   * channels subscribe again and fire "reconnect" with `recovered: false`.
   * The original server ignores the offer: nothing changes.
   */
  resume?: boolean;
}

/** CONNECTING, OPEN, CLOSING, CLOSED: the numbers WebSocket uses. */
export type MultiplexChannelState = 0 | 1 | 2 | 3;

interface MultiplexChannelEvent {
  readonly target: MultiplexChannel;
  readonly currentTarget: MultiplexChannel;
}

export interface MultiplexOpenEvent extends MultiplexChannelEvent {
  readonly type: "open";
}

export interface MultiplexMessageEvent extends MultiplexChannelEvent {
  readonly type: "message";
  /** The payload: everything after the topic, commas included. */
  readonly data: string;
  /**
   * For a group message from a server that keeps group histories
   * (docs/PROTOCOL-EXTENSIONS.md, section 4): the group's name. Absent
   * for every other message.
   */
  readonly group?: string;
}

/**
 * After a session our server could not resume, it replays each group's
 * messages the channel missed from the group's history; this says the
 * history no longer held all of them (trimmed, expired, or lost with the
 * broker). The messages that follow are what it still held, then live ones.
 */
export interface MultiplexGapEvent extends MultiplexChannelEvent {
  readonly type: "gap";
  /** The group whose messages were lost. */
  readonly group: string;
  readonly recovered: false;
}

/** Where a channel stands in a group's history. */
export interface MultiplexPosition {
  readonly epoch: string;
  readonly offset: string;
}

export interface MultiplexCloseEvent extends MultiplexChannelEvent {
  readonly type: "close";
  /**
   * 1000 when the application or the server closed the channel (or the
   * code given to close()); the socket's close code when the socket closed;
   * the server's notice code (404, 403, 429, 500) when it refused or
   * failed the channel (then `refused` is true); 1001 when the server is
   * shutting down and the multiplexer does not reconnect (`refused` false;
   * a reconnecting multiplexer keeps the channel instead).
   */
  readonly code: number;
  /**
   * "" (or the reason given to close()) for an application close,
   * "closed by server" when the server sent `uns`, the notice's text
   * ("no such service", "server shutting down") after a notice, and the
   * socket's close reason (or "connection closed") when the socket closed.
   */
  readonly reason: string;
  readonly wasClean: boolean;
  /**
   * True when our server sent an `err` notice before closing the channel
   * (docs/PROTOCOL-EXTENSIONS.md): it does not know the service, refused
   * this client, hit a limit or the service failed. False for every other
   * close, the 1001 (server shutting down) notice included: a restart is
   * not a refusal. The original server sends no notice: a channel it does
   * not know stays open and silent.
   */
  readonly refused: boolean;
}

/**
 * The connection came back and the channel subscribed again with the same
 * topic (then its queued messages went out). Also after a graceful restart
 * of our server: its 1001 (shutting down) notice does not close the
 * channel of a reconnecting multiplexer. Messages are not guaranteed
 * across the gap: what was in flight when the connection broke and what
 * the service sent meanwhile are lost, and the server sees a new channel
 * (its handler starts again). Resynchronise here.
 */
export interface MultiplexReconnectEvent extends MultiplexChannelEvent {
  readonly type: "reconnect";
  /**
   * Always false: the channel was subscribed again and messages may be
   * lost. (A resumed session recovers everything and fires no event.)
   */
  readonly recovered: false;
  /** The close code of the socket that was lost. */
  readonly code: number;
  /** Its close reason, or "connection closed". */
  readonly reason: string;
  readonly wasClean: boolean;
}

/**
 * A member joined or left a group whose presence the service shares with
 * this channel (our server only, on a resumable session: see
 * docs/PROTOCOL-EXTENSIONS.md, section 6). Each group starts with a
 * "snapshot"; one with `gap: true` means changes were missed, and gives the
 * members now.
 */
export interface MultiplexPresenceEvent extends MultiplexChannelEvent {
  readonly type: "presence";
  readonly group: string;
  readonly kind: "snapshot" | "joined" | "left";
  /** Who joined or left; null for a snapshot. */
  readonly member: string | null;
  /** Why a member left ("expired": its server process died); else null. */
  readonly reason: "left" | "expired" | null;
  /** A snapshot after missed changes. */
  readonly gap: boolean;
  /** The group's members after this event, sorted. */
  readonly members: string[];
}

export interface MultiplexChannelEventMap {
  open: MultiplexOpenEvent;
  message: MultiplexMessageEvent;
  close: MultiplexCloseEvent;
  reconnect: MultiplexReconnectEvent;
  gap: MultiplexGapEvent;
  presence: MultiplexPresenceEvent;
}

/** A listener function or object; `this` is the target (T). */
export type MultiplexListener<E, T = MultiplexChannel> =
  | ((this: T, event: E) => unknown)
  | { handleEvent(event: E): unknown };

/** One virtual channel; behaves like a WebSocket that carries text. */
export declare class MultiplexChannel {
  static readonly CONNECTING: 0;
  static readonly OPEN: 1;
  static readonly CLOSING: 2;
  static readonly CLOSED: 3;
  readonly CONNECTING: 0;
  readonly OPEN: 1;
  readonly CLOSING: 2;
  readonly CLOSED: 3;

  private constructor();

  /** The service name given to channel(). */
  readonly name: string;
  /**
   * The wire topic: escape(name), or escape(name) + "#" + an instance id
   * when another channel of that name was open on the multiplexer.
   */
  readonly topic: string;
  /** Stays OPEN while a reconnecting multiplexer is between sockets. */
  readonly readyState: MultiplexChannelState;

  onopen: ((this: MultiplexChannel, event: MultiplexOpenEvent) => unknown) | null;
  onmessage: ((this: MultiplexChannel, event: MultiplexMessageEvent) => unknown) | null;
  /** Fires exactly once, whoever closed the channel (the socket included). */
  onclose: ((this: MultiplexChannel, event: MultiplexCloseEvent) => unknown) | null;
  /** After each reconnection while the channel is open: see MultiplexReconnectEvent. */
  onreconnect: ((this: MultiplexChannel, event: MultiplexReconnectEvent) => unknown) | null;
  /** Messages of a group were lost for good: see MultiplexGapEvent. */
  ongap: ((this: MultiplexChannel, event: MultiplexGapEvent) => unknown) | null;
  /**
   * Where this channel stands in each group whose messages came with their
   * place in the group's history, by group name (a copy). Presented to a
   * server of ours that could not resume the session, so that it replays
   * what the channel missed.
   */
  readonly positions: { readonly [group: string]: MultiplexPosition };
  /** Members joining and leaving shared groups: see MultiplexPresenceEvent. */
  onpresence: ((this: MultiplexChannel, event: MultiplexPresenceEvent) => unknown) | null;
  /**
   * Answers the service's requests: call request.reply() or fail(), or
   * return a Promise of the reply. Throwing (or rejecting) answers 500;
   * with no handler, each request is answered 501 at once.
   */
  onrequest:
    | ((this: MultiplexChannel, request: MultiplexRequest) => unknown)
    | null;

  addEventListener<K extends keyof MultiplexChannelEventMap>(
    type: K,
    listener: MultiplexListener<MultiplexChannelEventMap[K]>,
    options?: boolean | { once?: boolean },
  ): void;
  removeEventListener<K extends keyof MultiplexChannelEventMap>(
    type: K,
    listener: MultiplexListener<MultiplexChannelEventMap[K]>,
  ): void;

  /**
   * Send text to the service. Queued while the socket is not open (before
   * the first open, during a reconnection, after a 1001 notice); silently
   * dropped once the channel is closing or closed. Throws TypeError for
   * binary data, and an Error named "QueueFullError" (the message is not
   * sent) when the multiplexer already queues `maxQueue` messages.
   */
  send(data: string): void;
  /**
   * Send the service a request; resolves with its reply, matched by id.
   * Rejects with a MultiplexRequestError (see there). Only on a resumable
   * session with our server; made before the server answered the offer, it
   * waits for the answer.
   */
  request(data: string, options?: MultiplexRequestOptions): Promise<string>;
  /**
   * Close the channel (sends `uns`); "close" fires asynchronously. code and
   * reason only appear in this channel's close event.
   */
  close(code?: number, reason?: string): void;
}

interface MultiplexerEvent {
  readonly target: WebSocketMultiplex;
  readonly currentTarget: WebSocketMultiplex;
}

/**
 * A socket opened and the waiting channels subscribed. Not fired for a
 * socket that was already open when given to the constructor.
 */
export interface MultiplexerOpenEvent extends MultiplexerEvent {
  readonly type: "open";
  /** True when a socket had been open before: this is a reconnection. */
  readonly reconnected: boolean;
  /**
   * True when the server resumed the session: the channels lost nothing
   * and fire no "reconnect".
   */
  readonly resumed: boolean;
}

/** The socket closed or failed to open; a new one comes after `delay`. */
export interface MultiplexerReconnectingEvent extends MultiplexerEvent {
  readonly type: "reconnecting";
  /** 1 for the first attempt after the last open socket. */
  readonly attempt: number;
  /** Milliseconds until the attempt. */
  readonly delay: number;
  /** The close code, reason and wasClean of the socket that closed. */
  readonly code: number;
  readonly reason: string;
  readonly wasClean: boolean;
}

/** Closed for good: every channel has fired its close event. */
export interface MultiplexerCloseEvent extends MultiplexerEvent {
  readonly type: "close";
  readonly code: number;
  readonly reason: string;
  readonly wasClean: boolean;
}

export interface MultiplexerEventMap {
  open: MultiplexerOpenEvent;
  reconnecting: MultiplexerReconnectingEvent;
  close: MultiplexerCloseEvent;
}

/** Many channels over one SockJS connection or WebSocket. */
export declare class WebSocketMultiplex {
  /** Over this socket, for its lifetime: no reconnection. */
  constructor(sock: MultiplexSocket, options?: MultiplexSocketOptions);
  /**
   * Over the sockets `connect` makes: one now, and another one whenever
   * the current one closes, unless `options.reconnect` is false.
   */
  constructor(connect: MultiplexSocketFactory, options?: MultiplexOptions);
  /** The current socket, as the original client names it. */
  readonly ws: MultiplexSocket;
  readonly socket: MultiplexSocket;
  /**
   * CONNECTING (also while a reconnection is pending), OPEN, CLOSING (the
   * socket is closing) or CLOSED (for good).
   */
  readonly readyState: MultiplexChannelState;

  onopen: ((this: WebSocketMultiplex, event: MultiplexerOpenEvent) => unknown) | null;
  onreconnecting:
    | ((this: WebSocketMultiplex, event: MultiplexerReconnectingEvent) => unknown)
    | null;
  onclose: ((this: WebSocketMultiplex, event: MultiplexerCloseEvent) => unknown) | null;

  addEventListener<K extends keyof MultiplexerEventMap>(
    type: K,
    listener: MultiplexListener<MultiplexerEventMap[K], WebSocketMultiplex>,
    options?: boolean | { once?: boolean },
  ): void;
  removeEventListener<K extends keyof MultiplexerEventMap>(
    type: K,
    listener: MultiplexListener<MultiplexerEventMap[K], WebSocketMultiplex>,
  ): void;

  /**
   * Open a channel to the service `name`. A second channel of a name that
   * is open gets its own topic (`name#instance`): our server opens it as
   * another channel of that service, the original server ignores it.
   */
  channel(name: string): MultiplexChannel;
  /**
   * Close every channel and the socket, and stop reconnecting. code and
   * reason (default 1000, "") appear in every close event; the socket gets
   * them too if it accepts them (1000 or 3000-4999).
   */
  close(code?: number, reason?: string): void;
  static readonly Channel: typeof MultiplexChannel;
}

export default WebSocketMultiplex;
