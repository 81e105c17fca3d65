/**
 * The client keys in force: PROXY_API_KEYS (fixed for the process) plus PROXY_API_KEYS_FILE
 * (reread on SIGHUP, so keys rotate without a restart: add the new key, SIGHUP, move the
 * clients, remove the old key, SIGHUP). A reload that fails keeps the keys that worked.
 */
import { readFileSync } from 'node:fs';
import { ApiKeys } from './api-keys.js';

export class KeyRing {
  private keys: ApiKeys | null;

  constructor(
    private readonly inline: ApiKeys | null,
    private readonly file: string | null,
    private readonly readFile: (path: string) => string = (p) => readFileSync(p, 'utf8'),
  ) {
    this.keys = this.build(); // throws: a bad file at start is a config error
  }

  private build(): ApiKeys | null {
    if (this.file === null) return this.inline;
    const fromFile = ApiKeys.parse(this.readFile(this.file), `PROXY_API_KEYS_FILE=${this.file}`);
    return this.inline === null ? fromFile : this.inline.merge(fromFile);
  }

  /** Null when no key is required (an open proxy). */
  current(): ApiKeys | null {
    return this.keys;
  }

  /** Rereads the file; returns the number of keys now in force, or throws and keeps the old. */
  reload(): number {
    const next = this.build();
    this.keys = next;
    return next?.size ?? 0;
  }
}
