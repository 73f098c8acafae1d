/** Small statistics helpers shared by the scenarios (per run) and the report (across reps). */

/** Nearest-rank percentile of already-sorted values (`p` in 0..100); NaN for an empty list. */
export function percentileSorted(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function percentile(values: readonly number[], p: number): number {
  return percentileSorted(
    [...values].sort((a, b) => a - b),
    p,
  );
}

export interface Summary {
  median: number;
  min: number;
  max: number;
  n: number;
}

/**
 * Median with min–max of the repetitions of one figure. The median (not the mean) because
 * the machine is shared: one disturbed repetition must not drag the figure.
 */
export function summarize(values: readonly number[]): Summary | undefined {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (finite.length === 0) return undefined;
  const mid = finite.length >> 1;
  const median = finite.length % 2 ? finite[mid]! : (finite[mid - 1]! + finite[mid]!) / 2;
  return { median, min: finite[0]!, max: finite[finite.length - 1]!, n: finite.length };
}
