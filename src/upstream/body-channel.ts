/**
 * A response body on its way from the upstream connection to whoever reads it (the relay,
 * or the attempt holding a small error body). It is the light replacement for a Readable
 * per response: no per-chunk event emission, no nextTick per chunk, no object-mode
 * machinery; the bytes pass as the same Buffer slices the socket produced.
 *
 * Until a reader attaches, chunks are held (they often arrive with the head, before the
 * handler has got round to relaying); past `highWaterBytes` held the producer is paused.
 * Once a reader attaches, chunks go straight through to it, and its pause()/resume() reach
 * the producer (the socket or h2 stream) as backpressure.
 */
/** Where the body goes. */
export interface BodySink {
  data(chunk: Buffer): void;
  /** The body is complete. */
  end(): void;
  /** The body stopped before its end: the connection failed or the exchange was aborted. */
  broken(): void;
}

/** What the reader holds: attach once (or again, to hand the rest to someone else), and steer. */
export interface BodySource {
  read(sink: BodySink): void;
  pause(): void;
  resume(): void;
}

/** How the channel steers its producer. */
export interface FlowControl {
  pause(): void;
  resume(): void;
}

const enum Ending {
  Open,
  Ended,
  Broken,
}

export class BodyChannel implements BodySink, BodySource {
  private sink: BodySink | null = null;
  private held: Buffer[] | null = null;
  private heldBytes = 0;
  private ending = Ending.Open;
  /** The reader asked for a pause (its own destination is full). */
  private readerPaused = false;
  /** Too much is held while no reader is attached. */
  private holdPaused = false;
  /** What the producer was last told. */
  private flowPaused = false;
  private delivering = false;

  constructor(
    private readonly flow: FlowControl,
    private readonly highWaterBytes = 64 * 1024,
  ) {}

  // ---- producer side

  data(chunk: Buffer): void {
    if (this.ending !== Ending.Open) return;
    const sink = this.sink;
    if (sink !== null) {
      sink.data(chunk);
      return;
    }
    (this.held ??= []).push(chunk);
    this.heldBytes += chunk.length;
    if (this.heldBytes > this.highWaterBytes && !this.holdPaused) {
      this.holdPaused = true;
      this.steer();
    }
  }

  end(): void {
    if (this.ending !== Ending.Open) return;
    this.ending = Ending.Ended;
    this.sink?.end();
  }

  broken(): void {
    if (this.ending !== Ending.Open) return;
    this.ending = Ending.Broken;
    this.sink?.broken();
  }

  // ---- reader side

  /**
   * Delivers what is held at once (synchronously), then everything as it comes. A reader may
   * call read() again with another sink from inside data(): the rest goes there, in order.
   */
  read(sink: BodySink): void {
    this.sink = sink;
    if (this.delivering) return; // the loop below goes on with the new reader
    const held = this.held;
    if (held !== null) {
      this.held = null;
      this.heldBytes = 0;
      this.delivering = true;
      for (const chunk of held) this.sink.data(chunk);
      this.delivering = false;
    }
    if (this.ending === Ending.Ended) this.sink.end();
    else if (this.ending === Ending.Broken) this.sink.broken();
    else if (this.holdPaused) {
      this.holdPaused = false;
      this.steer();
    }
  }

  pause(): void {
    this.readerPaused = true;
    this.steer();
  }

  resume(): void {
    this.readerPaused = false;
    this.steer();
  }

  private steer(): void {
    const paused = this.readerPaused || this.holdPaused;
    if (paused === this.flowPaused) return;
    this.flowPaused = paused;
    if (paused) this.flow.pause();
    else this.flow.resume();
  }

  /** The body was complete (ended cleanly). */
  get complete(): boolean {
    return this.ending === Ending.Ended;
  }
}
