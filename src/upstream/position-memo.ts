/**
 * Remembers, position by position, what each name in the last candidate list resolved to,
 * so that a list like the last one (the usual case: the same upstreams, in config order,
 * most of the time) costs one string comparison per entry instead of one Map lookup. A
 * name is compared with `===`, by content, so the memo is exact whatever the string's
 * identity; a list that differs only costs lookups from the first difference on.
 *
 * Whoever owns what `resolve` reads must call `clear()` when that changes (a reload).
 */
export class PositionMemo<T> {
  private readonly names: string[] = [];
  private readonly values: T[] = [];

  constructor(private readonly resolve: (name: string) => T) {}

  get(position: number, name: string): T {
    if (this.names[position] === name) return this.values[position]!;
    const value = this.resolve(name);
    this.names[position] = name;
    this.values[position] = value;
    return value;
  }

  clear(): void {
    this.names.length = 0;
    this.values.length = 0;
  }
}
