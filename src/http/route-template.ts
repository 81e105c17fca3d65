/**
 * Maps a request path to its route template (`/v1/files/abc/content` → `/v1/files/{file_id}/content`)
 * so the `endpoint` metric label has a fixed, small set of values. A label taken from the raw
 * path would grow one time series per file id, response id or typo a client sends; here any
 * path outside the table collapses to `/v1/{unknown}` or `other`, so the label set is at most
 * the table plus those two, whatever clients send.
 *
 * Matching is a trie by `/` segment: a literal segment is tried before a `{param}` at the same
 * place (so `/v1/responses/input_tokens` is not `/v1/responses/{response_id}`), falling back to
 * the param when the literal branch dead-ends further down. A last segment written `{name+}`
 * takes one or more remaining segments and is reported as `{name}` (see route-table.ts).
 */
import { ROUTE_TEMPLATES } from './route-table.js';

/** Label for a path under /v1/ that is in no template. */
export const UNKNOWN_V1 = '/v1/{unknown}';
/** Label for every path outside /v1/ (health checks, scanners, `/metrics` if routed here). */
export const OTHER = 'other';

const SLASH = 47;

interface TrieNode {
  /** Exact segments; null until a template needs one (most param nodes stay leaf-only). */
  literals: Map<string, TrieNode> | null;
  /** Any one non-empty segment. */
  param: TrieNode | null;
  /** The label when the path ends here. */
  label: string | null;
  /** The label when one or more segments remain and nothing more specific matched. */
  tail: string | null;
}

function node(): TrieNode {
  return { literals: null, param: null, label: null, tail: null };
}

export class RouteMatcher {
  readonly #root: TrieNode = node();

  /** Templates start with `/`; the first one to claim a trie position keeps it. */
  constructor(templates: readonly string[]) {
    for (const template of templates) this.#add(template);
  }

  /**
   * The template for `pathname` (a query part is ignored, one trailing slash tolerated).
   * Cost: one `indexOf` for the query, then per segment one `indexOf`, one substring and one
   * Map lookup: no arrays, no regexes; roughly 100–300 ns for a typical path. Backtracking
   * happens only where a literal and a param sit side by side, and the table is shallow.
   */
  match(pathname: string): string {
    let end = pathname.indexOf('?');
    if (end === -1) end = pathname.length;
    if (end > 1 && pathname.charCodeAt(end - 1) === SLASH) end--;
    if (pathname.charCodeAt(0) === SLASH) {
      const label = walk(this.#root, pathname, 1, end);
      if (label !== null) return label;
    }
    const underV1 = pathname.startsWith('/v1') && (end === 3 || pathname.charCodeAt(3) === SLASH);
    return underV1 ? UNKNOWN_V1 : OTHER;
  }

  #add(template: string): void {
    if (template.charCodeAt(0) !== SLASH) throw new Error(`route template must start with "/": ${template}`);
    const segments = template.slice(1).split('/');
    let at = this.#root;
    for (let i = 0; i < segments.length; i++) {
      const seg = segments[i]!;
      const isParam = seg.length > 2 && seg.startsWith('{') && seg.endsWith('}');
      if (isParam && seg.endsWith('+}')) {
        if (i !== segments.length - 1) throw new Error(`{name+} must be the last segment: ${template}`);
        at.tail ??= template.slice(0, -2) + '}';
        return;
      }
      if (isParam) {
        at = at.param ??= node();
      } else {
        const literals = (at.literals ??= new Map());
        let next = literals.get(seg);
        if (next === undefined) literals.set(seg, (next = node()));
        at = next;
      }
    }
    at.label ??= template;
  }
}

/** The label for path[start, end) below `at`, or null. Literal first, then param, then tail. */
function walk(at: TrieNode, path: string, start: number, end: number): string | null {
  let stop = path.indexOf('/', start);
  if (stop === -1 || stop > end) stop = end;
  if (stop === start) return null; // empty segment (`//`): no template has one
  const last = stop === end;
  if (at.literals !== null) {
    const next = at.literals.get(path.slice(start, stop));
    if (next !== undefined) {
      const label = last ? next.label : walk(next, path, stop + 1, end);
      if (label !== null) return label;
    }
  }
  if (at.param !== null) {
    const label = last ? at.param.label : walk(at.param, path, stop + 1, end);
    if (label !== null) return label;
  }
  return at.tail;
}

/** Built on first use from ROUTE_TEMPLATES: the one memo, so importing costs nothing. */
const defaultMatcher = ((): (() => RouteMatcher) => {
  let built: RouteMatcher | undefined;
  return () => (built ??= new RouteMatcher(ROUTE_TEMPLATES));
})();

/** `RouteMatcher.match` over the OpenAI table (route-table.ts). Same cost; never throws. */
export function routeTemplate(pathname: string): string {
  return defaultMatcher().match(pathname);
}
