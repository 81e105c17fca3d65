/**
 * Where requests go: the upstream URL read once into what each part needs. The handler
 * prefixes paths with `basePath` and sets Host to `host`; the pool and the WebSocket tunnel
 * connect to `connectHost:port` (an IPv6 literal without its brackets, which net.connect
 * does not take). One place, so the HTTP path and the tunnel cannot disagree.
 */
export interface UpstreamTarget {
  readonly url: URL;
  /** The URL's path without trailing slashes ('' for none): `/openai` + `/v1/models`. */
  readonly basePath: string;
  /** `host[:port]` as written in the URL, for the Host header (and h2 :authority). */
  readonly host: string;
  /** The name or address to connect to. */
  readonly connectHost: string;
  readonly port: number;
  readonly tls: boolean;
}

export function upstreamTarget(url: URL): UpstreamTarget {
  const tls = url.protocol === 'https:';
  return {
    url,
    basePath: url.pathname.replace(/\/+$/, ''),
    host: url.host,
    connectHost: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: Number(url.port) || (tls ? 443 : 80),
    tls,
  };
}
