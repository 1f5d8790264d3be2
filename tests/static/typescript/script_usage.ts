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

// A factory reconnects; the options and every event are typed.
const reconnecting = new WebSocketMultiplex(() => new SockJS("/multiplex"), {
  reconnect: { initialDelay: 500, maxDelay: 10000, maxAttempts: Infinity },
});
new WebSocketMultiplex(() => new WebSocket("ws://127.0.0.1/multiplex/websocket"));
new WebSocketMultiplex(() => new SockJS("/multiplex"), { reconnect: false });
reconnecting.onopen = (event) => console.log(event.reconnected ? "back" : "online");
reconnecting.onreconnecting = function (event) {
  console.log(event.attempt + event.delay, event.code, event.reason, this.readyState);
};
reconnecting.addEventListener("close", (event) => console.log(event.wasClean), {
  once: true,
});
const news = reconnecting.channel("news");
const more: string = reconnecting.channel("news").topic;
news.onreconnect = (event) => news.send(`resync after ${event.code} ${event.reason}`);
news.onclose = (event) => {
  if (event.refused && event.code === 404) console.log("no such service:", event.reason);
};
reconnecting.close(4000, "leaving");
reconnecting.close();
console.log(more, reconnecting.socket.readyState);

// Queued sends are bounded, with a socket or a factory.
const bounded = new WebSocketMultiplex(new SockJS("/multiplex"), { maxQueue: 50 });
new WebSocketMultiplex(new SockJS("/multiplex"), { maxQueue: Infinity, reconnect: false });
new WebSocketMultiplex(() => new SockJS("/multiplex"), { maxQueue: 0, reconnect: true });
try {
  bounded.channel("ann").send("queued");
} catch (error) {
  if (error instanceof Error && error.name === "QueueFullError") console.log(error.message);
}
