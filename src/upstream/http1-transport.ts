/**
 * HTTP/1.1 to the upstream over a bounded keep-alive pool (http.Agent / https.Agent, LIFO
 * so the warmest socket is reused and the cold ones age out). The connect phase has its
 * own timeout; the wait for the answer is bounded by the caller's cancellation (TIMEOUT).
 */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { writeBody, type RequestBody } from '../http/request-body.js';
import { ProxyError } from '../errors.js';
import type { Cancel } from '../cancel.js';
import { classifySocketError, UpstreamFailure, type Transport, type TransportStats, type UpstreamRequest, type UpstreamResponse } from './transport.js';

export interface Http1Options {
  readonly origin: URL;
  readonly poolSize: number;
  readonly connectTimeoutMs: number;
}

export class Http1Transport implements Transport {
  private readonly agent: http.Agent;
  private readonly request: typeof http.request;
  private opened = 0;
  private open = 0;

  constructor(private readonly opts: Http1Options) {
    const tls = opts.origin.protocol === 'https:';
    const agentOpts: http.AgentOptions = { keepAlive: true, maxSockets: opts.poolSize, maxFreeSockets: opts.poolSize, scheduling: 'lifo' };
    this.agent = tls ? new https.Agent(agentOpts) : new http.Agent(agentOpts);
    this.request = tls ? https.request : http.request;
  }

  send(r: UpstreamRequest, cancel: Cancel): Promise<UpstreamResponse> {
    // The closures below outlive the request phase (a stream can last minutes): they reach
    // the body only through this variable, cleared once it is handed to the socket, so a
    // large prompt is not held for the length of its answer.
    let pendingBody: RequestBody | null = r.body;
    const kept = r.body.kind === 'buffered';
    const sendBody = (req: http.ClientRequest): void => {
      const body = pendingBody;
      pendingBody = null;
      if (body !== null) writeBody(body, req);
    };
    const options: http.RequestOptions = {
      agent: this.agent,
      protocol: this.opts.origin.protocol,
      hostname: this.opts.origin.hostname,
      port: this.opts.origin.port,
      method: r.method,
      path: r.path,
      headers: r.headers,
      setHost: false,
    };
    return new Promise((resolve, reject) => {
      if (cancel.aborted) {
        reject(cancel.reason);
        return;
      }
      const { origin } = this.opts;
      const req = this.request(options);
      let connected = false;
      let connectTimer: NodeJS.Timeout | undefined;
      let answered = false;
      const offCancel = cancel.onAbort(() => {
        req.destroy();
        if (!answered) reject(cancel.reason);
      });
      req.on('socket', (socket: Socket) => {
        if (!socket.connecting) {
          connected = true;
          if (!kept) sendBody(req);
          return;
        }
        this.opened++;
        this.open++;
        socket.once('close', () => this.open--);
        connectTimer = setTimeout(() => {
          req.destroy(new UpstreamFailure('connect_error', `connect timeout after ${this.opts.connectTimeoutMs} ms`, { neverSent: true }));
        }, this.opts.connectTimeoutMs);
        connectTimer.unref();
        socket.once(origin.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
          connected = true;
          clearTimeout(connectTimer);
          if (!kept) sendBody(req);
        });
      });
      req.on('response', (res) => {
        answered = true;
        offCancel();
        clearTimeout(connectTimer);
        resolve({
          status: res.statusCode ?? 502,
          headers: res.headers,
          body: res,
          abort: () => req.destroy(),
        });
      });
      req.on('error', (err) => {
        clearTimeout(connectTimer);
        offCancel();
        if (answered || cancel.aborted) return;
        if (err instanceof UpstreamFailure || err instanceof ProxyError) {
          reject(err);
          return;
        }
        const outcome = classifySocketError(err, connected);
        // a reused keep-alive socket the peer had already closed: resendable at once, but only
        // when the body was kept (a streamed body may be half read by now)
        const stale = req.reusedSocket && (err as NodeJS.ErrnoException).code === 'ECONNRESET' && kept;
        reject(new UpstreamFailure(outcome, `${outcome}: ${err.message}`, { cause: err, neverSent: outcome === 'connect_error' || stale, staleConnection: stale }));
      });
      // A buffered body can be written at once (it is kept for a resend); a streamed one
      // only once connected, so a failed connect leaves it unread and the attempt replayable.
      if (kept) sendBody(req);
    });
  }

  stats(): TransportStats {
    return { protocol: 'http/1.1', openConnections: this.open, connectionsOpened: this.opened };
  }

  close(): Promise<void> {
    this.agent.destroy();
    return Promise.resolve();
  }
}
