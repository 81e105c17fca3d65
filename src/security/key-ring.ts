/**
 * The client keys in force: PROXY_API_KEYS (fixed for the process) plus PROXY_API_KEYS_FILE
 * (reread on SIGHUP, so keys rotate without a restart: add the new key, SIGHUP, move the
 * clients, remove the old key, SIGHUP). A reload that fails keeps the keys that worked.
 */
import { readFileSync } from 'node:fs';
import { ApiKeyError, ApiKeys } from './api-keys.js';

/**
 * The keys file cannot be read or does not parse. `problems` are ready to print, one line
 * each: `config error: PROXY_API_KEYS_FILE=<path>: line <n> (<id>): <reason>`; main prints
 * them and exits 2 at start, logs them at reload.
 */
export class KeysFileError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'KeysFileError';
  }
}

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
    const source = `config error: PROXY_API_KEYS_FILE=${this.file}`;
    let text: string;
    try {
      text = this.readFile(this.file);
    } catch (err) {
      throw new KeysFileError([`${source}: cannot be read: ${(err as Error).message}`]);
    }
    let fromFile: ApiKeys;
    try {
      fromFile = ApiKeys.parse(text, 'line');
    } catch (err) {
      if (!(err instanceof ApiKeyError)) throw err;
      throw new KeysFileError(err.problems.map((p) => `${source}: ${p}`));
    }
    return this.inline === null ? fromFile : this.inline.merge(fromFile);
  }

  /** Null when no key is required (an open proxy). */
  current(): ApiKeys | null {
    return this.keys;
  }

  /** Rereads the file; returns the number of keys now in force, or throws KeysFileError and keeps the old. */
  reload(): number {
    const next = this.build();
    this.keys = next;
    return next?.size ?? 0;
  }
}
