// An ES module: named and default imports of websocket-multiplex.mjs itself, typed
// by websocket-multiplex.d.mts next to it (without it: TS7016 under --strict).
import DefaultExport, {
  MultiplexChannel,
  type MultiplexCloseEvent,
  type MultiplexMessageEvent,
  type MultiplexOptions,
  type MultiplexSocketOptions,
  type MultiplexReconnectEvent,
  type MultiplexRequest,
  type MultiplexRequestError,
  type MultiplexerReconnectingEvent,
  WebSocketMultiplex,
} from "../../../src/websocket_multiplex/static/websocket-multiplex.mjs";

const same: typeof WebSocketMultiplex = DefaultExport;
const multiplexer = new same(new WebSocket("ws://127.0.0.1/multiplex/websocket"));
const bob: MultiplexChannel = multiplexer.channel("bob");
const state: 0 | 1 | 2 | 3 = bob.readyState;
if (state === MultiplexChannel.OPEN || bob.readyState === bob.CONNECTING) {
  bob.send("queued until open");
}
const onMessage = (event: MultiplexMessageEvent): void => {
  console.log(event.data.length);
};
bob.addEventListener("message", onMessage);
bob.removeEventListener("message", onMessage);
bob.addEventListener("close", (event: MultiplexCloseEvent) => console.log(event.reason), {
  once: true,
});
bob.addEventListener("open", { handleEvent: (event) => console.log(event.type) });
bob.close(4000, "done");
console.log(WebSocketMultiplex.Channel === MultiplexChannel);

const options: MultiplexOptions = { reconnect: { maxAttempts: 5 } };
const again = new WebSocketMultiplex(() => new WebSocket("ws://127.0.0.1/x"), options);
again.addEventListener("reconnecting", (event: MultiplexerReconnectingEvent) => {
  console.log(event.attempt, event.delay);
});
again.channel("bob").addEventListener("reconnect", (event: MultiplexReconnectEvent) => {
  console.log(event.wasClean, event.target.topic);
});

const plain: MultiplexSocketOptions = { maxQueue: 10 };
new WebSocketMultiplex(new WebSocket("ws://127.0.0.1/x"), plain);
const bounded: MultiplexOptions = { maxQueue: 100, reconnect: { initialDelay: 100 } };
new WebSocketMultiplex(() => new WebSocket("ws://127.0.0.1/x"), bounded);

const asking = new WebSocketMultiplex(() => new WebSocket("ws://127.0.0.1/x"), {
  maxOutstandingRequests: 8,
});
const cart = asking.channel("cart");
cart.onrequest = (request: MultiplexRequest) => {
  if (request.data === "no") {
    request.fail("no", 409);
  } else {
    request.reply(request.data.toUpperCase());
  }
};
cart.onrequest = () => Promise.resolve("a reply");
cart
  .request("total", { timeout: 5000 })
  .then((reply: string) => console.log(reply.length))
  .catch((error: MultiplexRequestError) => console.log(error.name, error.code, error.text));
