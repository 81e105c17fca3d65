/**
 * Which upstream holds each stored response. A `POST /v1/responses` is balanced like a chat
 * completion, but the response it stores lives on the upstream that made it: a later
 * `GET/DELETE /v1/responses/{id}` (or its cancel, input items) and a request naming it in
 * `previous_response_id` must go there. The id is read from the start of the answer as it
 * passes (the JSON's `id`, or the stream's `response.created` event), in the first few KiB
 * only. Bounded, least recently learned first out; forgotten on restart (then the home
 * upstream is asked, as for every id the proxy does not know).
 */
const RESPONSE_ID = /"id"\s*:\s*"(resp_[A-Za-z0-9_-]{1,200})"/;
/** Bytes of an answer looked at for its id. */
const SCAN_BYTES = 4096;

export class ResponseHomes {
  private readonly homes = new Map<string, string>();

  constructor(private readonly capacity = 20_000) {}

  get size(): number {
    return this.homes.size;
  }

  /** The upstream that made response `id`, if known. */
  get(id: string): string | undefined {
    return this.homes.get(id);
  }

  remember(id: string, upstream: string): void {
    this.homes.delete(id);
    this.homes.set(id, upstream);
    if (this.homes.size > this.capacity) this.homes.delete(this.homes.keys().next().value!);
  }

  /** Watches an answer of `upstream` for the id of the response it stores (a relay tap). */
  watch(upstream: string): { push(chunk: Buffer): void } {
    let seen = '';
    let done = false;
    return {
      push: (chunk) => {
        if (done) return;
        seen += chunk.toString('latin1', 0, Math.min(chunk.length, SCAN_BYTES - seen.length));
        const m = RESPONSE_ID.exec(seen);
        if (m !== null) this.remember(m[1]!, upstream);
        if (m !== null || seen.length >= SCAN_BYTES) done = true;
      },
    };
  }
}
