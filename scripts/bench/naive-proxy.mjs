#!/usr/bin/env node
/**
 * The Node floor: the simplest correct-enough reverse proxy (http.createServer + http.request
 * over a keep-alive Agent + pipe both ways). No retries, limits, metrics or logs: whatever
 * openai-proxy costs above this is the price of its features.
 * env UPSTREAM_URL; prints {"port":N} once listening on 127.0.0.1.
 */
import http from 'node:http';

const upstream = new URL(process.env.UPSTREAM_URL ?? 'http://127.0.0.1:8001');
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 1024, scheduling: 'lifo' });
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
const strip = (/** @type {http.IncomingHttpHeaders} */ h) => {
  /** @type {http.OutgoingHttpHeaders} */
  const out = {};
  for (const k in h) if (!HOP.has(k)) out[k] = h[k];
  return out;
};

const server = http.createServer((req, res) => {
  const headers = strip(req.headers);
  headers.host = upstream.host;
  const up = http.request({ agent, hostname: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers }, (upRes) => {
    res.writeHead(upRes.statusCode ?? 502, strip(upRes.headers));
    upRes.pipe(res);
  });
  up.on('error', () => {
    if (!res.headersSent) res.writeHead(502).end();
    else res.destroy();
  });
  res.on('close', () => {
    if (!res.writableFinished) up.destroy();
  });
  req.pipe(up);
});
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;
server.requestTimeout = 0;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: /** @type {import('node:net').AddressInfo} */ (server.address()).port }) + '\n');
});
process.once('SIGTERM', () => process.exit(0));
process.once('SIGINT', () => process.exit(0));
