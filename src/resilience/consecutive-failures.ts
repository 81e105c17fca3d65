/**
 * When to trip, kept apart from the breaker's state machine (as cockatiel's
 * ConsecutiveBreaker is): the breaker asks "should I open?" after each failure and does
 * not care how the answer is reached. This strategy opens after `threshold` failures in a
 * row; any success in between starts the count again, so a flaky but mostly working
 * upstream is never cut off.
 */
export class ConsecutiveFailures {
  readonly threshold: number;
  private failures = 0;

  /** @param threshold consecutive failures that trip the breaker; an integer ≥ 1. */
  constructor(threshold: number) {
    if (!(Number.isInteger(threshold) && threshold >= 1)) {
      throw new RangeError(`threshold must be an integer >= 1, got ${threshold}`);
    }
    this.threshold = threshold;
  }

  /** Failures in a row so far. */
  get count(): number {
    return this.failures;
  }

  /** A success breaks the run. */
  success(): void {
    this.failures = 0;
  }

  /** Counts a failure; true when the run has reached the threshold and the breaker should open. */
  failure(): boolean {
    this.failures++;
    return this.failures >= this.threshold;
  }

  /** Forgets the run, when the breaker closes after a successful probe. */
  reset(): void {
    this.failures = 0;
  }
}
