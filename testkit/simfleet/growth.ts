/**
 * History growth fitted from measured deployments (issue 13, items 2 and 6): a least-squares line
 * `fixed + perHost × n` through (fleet size, events or bytes) points, and the largest fleet whose
 * execution stays under a limit at that growth. Used by `npm run bench:scale -- --sizes …` and by
 * tests/simfleet/bounded-bytes.test.ts.
 */

export interface Line {
  fixed: number;
  perHost: number;
}

/** The least-squares line through the points (two or more distinct sizes; one point: through the origin). */
export function fitLine(points: ReadonlyArray<{ n: number; y: number }>): Line {
  if (points.length === 0) throw new Error('fitLine: no points');
  const xs = new Set(points.map((p) => p.n));
  if (xs.size < 2) {
    const p = points[0] as { n: number; y: number };
    return { fixed: 0, perHost: p.y / p.n };
  }
  const k = points.length;
  const mx = points.reduce((a, p) => a + p.n, 0) / k;
  const my = points.reduce((a, p) => a + p.y, 0) / k;
  const sxy = points.reduce((a, p) => a + (p.n - mx) * (p.y - my), 0);
  const sxx = points.reduce((a, p) => a + (p.n - mx) ** 2, 0);
  const perHost = sxy / sxx;
  return { fixed: my - perHost * mx, perHost };
}

/** The largest whole n with fixed + perHost × n below `limit` (Infinity when it does not grow). */
export function largestUnder(line: Line, limit: number): number {
  if (line.perHost <= 0) return line.fixed < limit ? Infinity : 0;
  return Math.max(0, Math.ceil((limit - line.fixed) / line.perHost) - 1);
}
