/** Picks among weighted choices in O(log n) from a cumulative table built once. */
export class WeightedPicker<T> {
  private readonly cumulative: number[] = [];
  private readonly items: T[] = [];
  private readonly total: number;

  constructor(choices: ReadonlyArray<{ item: T; weight: number }>, private readonly random: () => number = Math.random) {
    let sum = 0;
    for (const c of choices) {
      if (c.weight <= 0) continue;
      sum += c.weight;
      this.cumulative.push(sum);
      this.items.push(c.item);
    }
    this.total = sum;
  }

  get size(): number { return this.items.length; }

  pick(): T | undefined {
    if (this.items.length <= 1) return this.items[0];
    const target = this.random() * this.total;
    let lo = 0;
    let hi = this.cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.cumulative[mid]! > target) hi = mid;
      else lo = mid + 1;
    }
    return this.items[lo];
  }
}
