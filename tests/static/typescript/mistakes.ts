// Each line must fail to type-check: the declarations are not just `any`.
/// <reference path="../../../src/websocket_multiplex/static/websocket-multiplex.d.ts" />

const m = new WebSocketMultiplex(new WebSocket("ws://127.0.0.1/x"));
m.channel(42);
m.channel("a").send({ not: "text" });
m.channel("a").onmessage = (event) => event.data.toFixed();
m.channel("a").addEventListener("messages", () => undefined);
m.channel("a").readyState = 1;
new WebSocketMultiplex("not a socket");
new WebSocketMultiplex(new WebSocket("ws://127.0.0.1/x"), { reconnect: true });
new WebSocketMultiplex(() => "not a socket");
new WebSocketMultiplex(() => new WebSocket("ws://x"), { reconnect: { initialDelay: "1s" } });
new WebSocketMultiplex(() => new WebSocket("ws://x"), { reconnects: true });
m.onreconnecting = (event) => event.attempt.toUpperCase();
m.channel("a").onreconnect = (event) => event.data;
m.channel("a").onclose = (event) => event.refused.toFixed();
m.addEventListener("message", () => undefined);
m.close("going away");
new WebSocketMultiplex(() => new WebSocket("ws://x"), { maxQueue: "10" });
new WebSocketMultiplex(new WebSocket("ws://x"), { maxQueue: true });
m.channel("a").request(42);
m.channel("a").request("x", { timeout: "5s" });
m.channel("a").onrequest = (request) => request.data.toFixed();
m.channel("a").request("x").then((reply) => reply.toFixed());
