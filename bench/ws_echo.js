// The Node floor: a bare `ws` echo server, the original server's stack, under the same load
// as bench/echo_server.py (aiohttp). It greets like the daemon (one `connection` frame) and
// answers every text frame with a pong-shaped frame; GET /readyz answers 200.
//
//   NODE_PATH=<dir>/node_modules node bench/ws_echo.js --port 8097
//
// bench/run.py installs `ws` into a temporary folder (`npm install --prefix <dir> ws`) and
// runs this with NODE_PATH pointing there; nothing is installed globally.
"use strict";

const http = require("http");
const { WebSocketServer } = require("ws");

function option(name, fallback) {
  const at = process.argv.indexOf(name);
  return at >= 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

const host = option("--host", "127.0.0.1");
const port = Number(option("--port", "8097"));
const HELLO = '{"type":"connection","mode":"websocket","status":"connected"}';

const server = http.createServer((req, res) => {
  if (req.url === "/readyz" || req.url === "/healthz") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end('{"status":"ready"}');
    return;
  }
  res.writeHead(404);
  res.end();
});

// Same frame limit as the aiohttp servers (64 KB); no permessage-deflate, like them.
const wss = new WebSocketServer({ server, maxPayload: 64 * 1024, perMessageDeflate: false });

wss.on("connection", (ws) => {
  ws.send(HELLO);
  ws.on("message", (data, isBinary) => {
    if (!isBinary) {
      ws.send(`{"type":"pong","timestamp":${Date.now()}}`);
    }
  });
});

server.listen(port, host, 511);

function stop() {
  for (const client of wss.clients) {
    client.terminate();
  }
  server.close(() => process.exit(0));
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
