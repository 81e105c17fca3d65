/**
 * A WebSocket upgrade under `/v1/`: the same admission as any request (key, bucket,
 * breaker), then a concurrency slot held while the tunnel is open. The upstream must answer
 * the handshake within TIMEOUT; its status is the breaker's verdict. Refusals are written on
 * the raw socket in the same OpenAI shape, and the tunnel gets one record when it closes.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { CLIENT_GONE } from '../cancel.js';
import { ProxyError } from '../errors.js';
import { toUpstreamHeaders } from '../http/headers.js';
import { rawError } from '../http/raw-error.js';
import type { Release } from '../resilience/concurrency-gate.js';
import type { UpstreamTarget } from '../upstream/target.js';
import { tunnelWebSocket } from '../upstream/websocket-tunnel.js';
import { admit, type AdmissionParts } from './admission.js';
import { BreakerTicket } from './breaker-ticket.js';
import { forwardContext } from './forwarding.js';
import type { ProxyParts } from './handler.js';
import type { Lifetimes } from './lifetime.js';
import { newRecord, type Outcomes, type RateHeaders, type Reply } from './outcomes.js';

export class UpgradeHandler {
  constructor(
    private readonly p: ProxyParts,
    private readonly lifetimes: Lifetimes,
    private readonly target: UpstreamTarget,
    private readonly admission: AdmissionParts,
    private readonly outcomes: Outcomes,
  ) {}

  async handle(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const { clock, telemetry, config } = this.p;
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
    let ticket: BreakerTicket | null = null;
    let rateHeaders: RateHeaders;
    try {
      const admission = admit(this.admission, req, rec.client, started);
      rateHeaders = admission.rateHeaders;
      if (!admission.ok) return outcomes.refuse(rec, reply, admission.error, rateHeaders);
      const t = (ticket = new BreakerTicket(this.p.breaker, clock, admission.probe));
      if (this.p.gate !== null) {
        life.enter('queued');
        release = await this.p.gate.acquire(life.cancel.signal);
      }
      life.startDeadline(config.timeoutMs);
      life.enter('tunnel');
      rec.attempts = 1;
      const result = await tunnelWebSocket(req, socket, head, {
        target: this.target,
        path: this.target.basePath + rec.path,
        headers: toUpstreamHeaders(req.headers, forwardContext(config, this.target, req, rec.requestId, admission.keysOn, false)), // a tunnel is always HTTP/1.1
        connectTimeoutMs: config.connectTimeoutMs,
        clock,
        life,
        onAnswer: (status) => {
          answered = true;
          life.clearDeadline(); // an open tunnel may stay quiet as long as it likes
          const failed = status >= 500;
          telemetry.attempt(failed ? 'http_5xx' : 'ok', failed ? `upstream answered ${status}` : undefined);
          if (failed) t.failure();
          else t.success();
        },
      });
      rec.bytesIn = result.bytesIn;
      rec.bytesOut = result.bytesOut;
      if (result.status !== null) {
        rec.status = result.status;
        if (life.endedBy === 'shutdown') rec.error = 'draining';
      } else if (life.ended) {
        if (life.endedBy === 'deadline') {
          telemetry.attempt('timeout', 'no handshake answer before TIMEOUT');
          t.failure();
        }
        outcomes.endedEarly(rec, life.endedBy!, reply, rateHeaders, () => socket.destroy());
      } else {
        telemetry.attempt(result.failure, result.message);
        t.failure();
        const err =
          result.failure === 'connect_error'
            ? new ProxyError('upstream_unreachable', `The upstream could not be reached (${result.message}).`)
            : new ProxyError('upstream_protocol', `The upstream broke the connection before answering (${result.message}).`);
        outcomes.fail(rec, reply, err, rateHeaders);
      }
    } catch (err) {
      outcomes.failed(rec, err, reply, rateHeaders, socket);
    } finally {
      release?.();
      ticket?.release();
      life.finish();
      rec.durationMs = clock.now() - started;
      telemetry.requestFinished(rec);
    }
  }
}
