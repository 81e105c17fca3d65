/**
 * The limits of each client, from the config and the keys in force: a key's own `rpm`,
 * `tpm`, `max_parallel` and `weight` (PROXY_API_KEYS_FILE), else the defaults
 * (RATE_LIMIT_REQUESTS per RATE_LIMIT_WINDOW when RATE_LIMIT_ENABLED, TOKEN_LIMIT_TPM, no
 * parallel cap, weight 1). Clients without keys (addresses) get the defaults. A key's own
 * `rpm` applies even with RATE_LIMIT_ENABLED=false: it was written for that key.
 *
 * One policy object per key id, made again only when the keys are reloaded, so the limits
 * table can tell a changed policy by identity.
 */
import type { Config } from '../config.js';
import type { ClientPolicy } from '../resilience/client-limits.js';
import type { ApiKeys } from '../security/api-keys.js';

export class ClientPolicies {
  private readonly fallback: ClientPolicy;
  private keys: ApiKeys | null = null;
  private byId = new Map<string, ClientPolicy>();

  constructor(
    config: Config,
    private readonly apiKeys: () => ApiKeys | null,
  ) {
    this.fallback = {
      requests: config.rateLimitEnabled ? { capacity: config.rateLimitRequests, windowSec: config.rateLimitWindowSec } : null,
      tokensPerMinute: config.tokenLimitTpm > 0 ? config.tokenLimitTpm : null,
      maxParallel: null,
      weight: 1,
    };
  }

  /** The policy of a key id, or of a client without a key (null). */
  for(keyId: string | null): ClientPolicy {
    if (keyId === null) return this.fallback;
    const keys = this.apiKeys();
    if (keys !== this.keys) {
      this.keys = keys; // reloaded: policies are made again as they are asked for
      this.byId = new Map();
    }
    let p = this.byId.get(keyId);
    if (p === undefined) {
      const l = keys?.limits(keyId);
      p =
        l === undefined
          ? this.fallback
          : {
              requests: l.rpm !== null ? { capacity: l.rpm, windowSec: 60 } : this.fallback.requests,
              tokensPerMinute: l.tpm ?? this.fallback.tokensPerMinute,
              maxParallel: l.maxParallel,
              weight: l.weight,
            };
      this.byId.set(keyId, p);
    }
    return p;
  }
}
