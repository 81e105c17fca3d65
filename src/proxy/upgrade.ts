/**
 * A WebSocket upgrade under `/v1/`: the same admission as any request (key, bucket), then a
 * concurrency slot held while the tunnel is open, and an upstream chosen as for any request
 * (by the `model` of its query among several; its breaker must let it through). The
 * upstream must answer the handshake within TIMEOUT; its status is the breaker's verdict.
 * Refusals are written on the raw socket in the same OpenAI shape, and the tunnel gets one
 * record when it closes. A tunnel is never retried: its bytes went to the client as they came.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { CLIENT_GONE } from '../cancel.js';
import { ProxyError } from '../errors.js';
import { toUpstreamHeaders } from '../http/headers.js';
import { rawError } from '../http/raw-error.js';
import type { Release } from '../resilience/gate.js';
import type { LimitTicket } from '../resilience/limit-store.js';
import type { Upstream } from '../upstream/upstream.js';
import { BALANCED } from '../upstream/upstream-set.js';
import { tunnelWebSocket } from '../upstream/websocket-tunnel.js';
import { admit, type AdmissionParts } from './admission.js';
import { BreakerTickets } from './breaker-ticket.js';
import { forwardContext } from './forwarding.js';
import type { ProxyParts } from './handler.js';
import type { Lifetimes } from './lifetime.js';
import { newRecord, unavailable, type Outcomes, type RateHeaders, type Reply } from './outcomes.js';
import type { ResponseHomes } from './response-homes.js';
import { routeOf } from './routing.js';

export class UpgradeHandler {
  constructor(
    private readonly p: ProxyParts,
    private readonly lifetimes: Lifetimes,
    private readonly admission: AdmissionParts,
    private readonly outcomes: Outcomes,
    private readonly responses: ResponseHomes,
  ) {}

  async handle(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const { clock, telemetry, config, upstreams } = this.p;
    const { outcomes } = this;
    const started = clock.now();
    const life = this.lifetimes.begin();
    socket.on('error', () => life.end(CLIENT_GONE)); // while it waits, a broken client socket must not throw
    life.watchSocket(socket);
    const rec = newRecord(req, config.trustProxy);
    rec.stream = true;
    let answered = false;
    // once the upstream answered, its bytes went to the client: an error can only cut the connection
    const reply: Reply = (err, extra) => (answered ? (socket.destroy(), err.status) : rawError(socket, err, rec.requestId, extra));
    telemetry.requestStarted();
    let release: Release | null = null;
    const tickets = new BreakerTickets<Upstream>(clock);
    let using: Upstream | null = null;
    let client: LimitTicket | null = null;
    let rateHeaders: RateHeaders;
    try {
      const admission = await admit(this.admission, req, rec.client);
      rateHeaders = admission.rateHeaders;
      rec.keyId = admission.keyId;
      if (!admission.ok) return outcomes.refuse(rec, reply, admission.error, rateHeaders, admission.limited);
      client = admission.client;
      const route = upstreams.several ? routeOf({ method: rec.method, url: rec.path, headers: req.headers, model: null, body: null }, { home: upstreams.home.name, responses: this.responses, affinity: config.balance === 'affinity' }) : BALANCED;
      if (this.p.gate !== null) {
        life.enter('queued');
        release = await this.p.gate.acquire({ key: client.key, weight: client.policy.weight }, life.cancel.signal);
      }
      const u = upstreams.choose(route, new Set(), clock.now());
      const t = u === null ? null : tickets.for(u);
      if (u === null || !t!.admit()) return outcomes.refuse(rec, reply, unavailable(upstreams, route, clock.now(), config.healthCheckIntervalMs), rateHeaders);
      using = u;
      upstreams.enter(u);
      life.startDeadline(config.timeoutMs);
      life.enter('tunnel');
      rec.attempts = 1;
      rec.upstream = u.name;
      const result = await tunnelWebSocket(req, socket, head, {
        target: u.target,
        path: u.target.basePath + rec.path,
        headers: toUpstreamHeaders(req.headers, forwardContext(config, u.target, req, rec.requestId, admission.keysOn, false)), // a tunnel is always HTTP/1.1
        connectTimeoutMs: config.connectTimeoutMs,
        clock,
        life,
        onAnswer: (status) => {
          answered = true;
          life.clearDeadline(); // an open tunnel may stay quiet as long as it likes
          const failed = status >= 500;
          telemetry.attempt(u.name, failed ? 'http_5xx' : 'ok', failed ? `upstream answered ${status}` : undefined);
          if (failed) t!.failure();
          else t!.success();
        },
      });
      rec.bytesIn = result.bytesIn;
      rec.bytesOut = result.bytesOut;
      if (result.status !== null) {
        rec.status = result.status;
        if (life.endedBy === 'shutdown') rec.error = 'draining';
      } else if (life.ended) {
        if (life.endedBy === 'deadline') {
          telemetry.attempt(u.name, 'timeout', 'no handshake answer before TIMEOUT');
          t!.failure();
        }
        outcomes.endedEarly(rec, life.endedBy!, reply, rateHeaders, () => socket.destroy());
      } else {
        telemetry.attempt(u.name, result.failure, result.message);
        t!.failure();
        const err =
          result.failure === 'connect_error'
            ? new ProxyError('upstream_unreachable', `The upstream could not be reached (${result.message}).`)
            : new ProxyError('upstream_protocol', `The upstream broke the connection before answering (${result.message}).`);
        outcomes.fail(rec, reply, err, rateHeaders);
      }
    } catch (err) {
      outcomes.failed(rec, err, reply, rateHeaders, socket);
    } finally {
      // a session's tokens cannot be read off its frames: the fair queue is charged what a
      // request naming no maximum would be, so tunnels do not go ahead of everyone
      if (release !== null && client !== null) this.p.gate!.charge(client.key, config.maxTokensEstimate);
      release?.();
      tickets.releaseAll();
      if (using !== null) upstreams.leave(using);
      if (client !== null) this.admission.limits.leave(client, 0);
      life.finish();
      rec.durationMs = clock.now() - started;
      telemetry.requestFinished(rec);
    }
  }
}
