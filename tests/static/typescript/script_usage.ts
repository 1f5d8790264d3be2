// A classic-script page: the global WebSocketMultiplex from websocket-multiplex.js.
/// <reference path="../../../src/websocket_multiplex/static/websocket-multiplex.d.ts" />

declare const SockJS: new (url: string) => {
  readyState: number;
  send(data: string): void;
  close(): void;
  addEventListener(type: string, listener: (event: any) => void): void;
};

const multiplexer: WebSocketMultiplex = new WebSocketMultiplex(new SockJS("/multiplex"));
const ann = multiplexer.channel("ann");
ann.onopen = () => ann.send("hello");
ann.onmessage = (event) => {
  const text: string = event.data;
  console.log(text.toUpperCase(), event.target.name);
};
ann.onclose = function (event) {
  const why: string = event.reason;
  console.log(event.code + 1, why, event.wasClean, this.readyState === this.CLOSED);
};
const native = new WebSocketMultiplex(new WebSocket("ws://127.0.0.1/multiplex/websocket"));
native.ws.send("raw");
native.channel("bob").close();
