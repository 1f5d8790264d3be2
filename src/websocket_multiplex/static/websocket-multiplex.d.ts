// Type declarations for the websocket-multiplex browser client: both the
// classic script websocket-multiplex.js (which defines the global
// `WebSocketMultiplex`) and the ES module websocket-multiplex.mjs (named and
// default export `WebSocketMultiplex`).
//
// Classic script: `/// <reference path="websocket-multiplex.d.ts" />`.
// ES module: import from a path that resolves to this file, or copy it next
// to the .mjs as websocket-multiplex.d.mts.

/** What the multiplexer needs from its carrier: a SockJS object or a WebSocket. */
export interface MultiplexSocket {
  /** 0 connecting, 1 open, 2 closing, 3 closed (WebSocket and SockJS agree). */
  readonly readyState: number;
  send(data: string): void;
  addEventListener(type: string, listener: (event: any) => void): void;
}

export type MultiplexChannelState = 0 | 1 | 2 | 3;

export interface MultiplexOpenEvent {
  readonly type: "open";
  readonly target: MultiplexChannel;
  readonly currentTarget: MultiplexChannel;
}

export interface MultiplexMessageEvent {
  readonly type: "message";
  /** The payload: everything after the topic, commas included. */
  readonly data: string;
  readonly target: MultiplexChannel;
  readonly currentTarget: MultiplexChannel;
}

export interface MultiplexCloseEvent {
  readonly type: "close";
  /**
   * 1000 when the application or the server closed the channel (or the
   * code given to close()); the socket's close code when the socket closed.
   */
  readonly code: number;
  /**
   * "" (or the reason given to close()) for an application close,
   * "closed by server" when the server sent `uns`, and the socket's close
   * reason (or "connection closed") when the socket closed.
   */
  readonly reason: string;
  readonly wasClean: boolean;
  readonly target: MultiplexChannel;
  readonly currentTarget: MultiplexChannel;
}

export interface MultiplexChannelEventMap {
  open: MultiplexOpenEvent;
  message: MultiplexMessageEvent;
  close: MultiplexCloseEvent;
}

export type MultiplexListener<E> =
  | ((this: MultiplexChannel, event: E) => unknown)
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
  /** The name as it travels on the wire: JavaScript escape(name). */
  readonly topic: string;
  readonly readyState: MultiplexChannelState;

  onopen: ((this: MultiplexChannel, event: MultiplexOpenEvent) => unknown) | null;
  onmessage: ((this: MultiplexChannel, event: MultiplexMessageEvent) => unknown) | null;
  /** Fires exactly once, whoever closed the channel (the socket included). */
  onclose: ((this: MultiplexChannel, event: MultiplexCloseEvent) => unknown) | null;

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
   * Send text to the service. Queued until the socket is open; silently
   * dropped once the channel is closing or closed. Throws TypeError for
   * binary data.
   */
  send(data: string): void;
  /**
   * Close the channel (sends `uns`); "close" fires asynchronously. code and
   * reason only appear in this channel's close event.
   */
  close(code?: number, reason?: string): void;
}

/** Many channels over one SockJS connection or WebSocket. */
export declare class WebSocketMultiplex {
  constructor(sock: MultiplexSocket);
  /** The socket, as the original client names it. */
  readonly ws: MultiplexSocket;
  readonly socket: MultiplexSocket;
  /**
   * Open a channel to the service `name`. Throws if a channel of that name
   * is already open (and not closing) on this multiplexer.
   */
  channel(name: string): MultiplexChannel;
  static readonly Channel: typeof MultiplexChannel;
}

export default WebSocketMultiplex;

type WebSocketMultiplexClass = typeof WebSocketMultiplex;
type WebSocketMultiplexInstance = WebSocketMultiplex;

declare global {
  /** Defined by the classic script websocket-multiplex.js. */
  var WebSocketMultiplex: WebSocketMultiplexClass;
  type WebSocketMultiplex = WebSocketMultiplexInstance;
}
