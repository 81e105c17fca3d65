/**
 * The message links between the primary and its workers when WORKERS > 1 (node:cluster IPC).
 * Every message is a plain object with a channel name `ch`; each part of the proxy that spans
 * workers (the shared limits, the one request log, the summed metrics and stats, control)
 * speaks on its own channel, so the parts know only these two interfaces and are tested over
 * an in-memory pair (test/unit/memory-link.mjs) instead of real processes.
 */

/** One IPC message: its channel and whatever that channel's part sends. */
export interface ChannelMessage {
  readonly ch: string;
  readonly [field: string]: unknown;
}

/** A worker's side: to the primary and back. */
export interface PrimaryLink {
  /**
   * Sends `msg`; `sent` (optional) is called once it has left this process (written to the
   * channel) or could not be sent (the primary is gone): what the log forwarder needs to
   * bound its backlog when the primary reads slowly.
   */
  send(msg: ChannelMessage, sent?: () => void): void;
  /** Messages from the primary on channel `ch`. */
  on(ch: string, fn: (msg: ChannelMessage) => void): void;
}

/** The primary's side: to each worker and back, and word of a worker that is gone. */
export interface WorkersLink {
  sendTo(workerId: number, msg: ChannelMessage): void;
  /** Messages from any worker on channel `ch`. */
  on(ch: string, fn: (workerId: number, msg: ChannelMessage) => void): void;
  /** The ids of the workers alive now. */
  workers(): readonly number[];
  /** Called once when a worker has exited (its work is lost; what it held must be freed). */
  onExit(fn: (workerId: number) => void): void;
}
