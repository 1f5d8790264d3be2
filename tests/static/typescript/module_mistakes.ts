// Each line must fail to type-check: the module's declarations are not just `any`.
import WebSocketMultiplex from "../../../src/websocket_multiplex/static/websocket-multiplex.mjs";

const m = new WebSocketMultiplex(new WebSocket("ws://127.0.0.1/x"));
m.channel(42);
m.channel("a").send({ not: "text" });
m.channel("a").onclose = (event) => event.refused.toFixed();
new WebSocketMultiplex(new WebSocket("ws://127.0.0.1/x"), { reconnect: true });
new WebSocketMultiplex(() => new WebSocket("ws://x"), { maxQueue: "10" });
new window.WebSocketMultiplex(new WebSocket("ws://x"));
