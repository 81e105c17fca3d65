/**
 * The request id: the client's `x-request-id` when it is a sane token (bounded length,
 * visible ASCII, so it cannot grow memory or break a log line), otherwise a fresh one.
 */
import { randomUUID } from 'node:crypto';

const SAFE_ID = /^[\x21-\x7e]{1,128}$/;

export function requestIdFor(given: string | string[] | undefined): string {
  if (typeof given === 'string' && SAFE_ID.test(given)) return given;
  return `req_${randomUUID().replace(/-/g, '')}`;
}
