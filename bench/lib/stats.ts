/** Medians with their spread: every figure of the benchmark is one of these. */
export interface Stat {
  n: number;
  median: number;
  min: number;
  max: number;
  q1: number;
  q3: number;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (sorted[lo] as number) + ((sorted[hi] as number) - (sorted[lo] as number)) * (pos - lo);
}

export function stat(values: number[]): Stat {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return { n: v.length, median: quantile(v, 0.5), min: v[0] ?? NaN, max: v[v.length - 1] ?? NaN, q1: quantile(v, 0.25), q3: quantile(v, 0.75) };
}

/** Rounds to a sensible number of digits for the table. */
export function num(x: number, digits?: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  const d = digits ?? (Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2);
  return x.toFixed(d);
}

/** `median (min–max)`; with one sample just the value. */
export function fmt(s: Stat, unit = '', digits?: number): string {
  if (s.n === 0) return 'n/a';
  if (s.n === 1) return `${num(s.median, digits)}${unit} (n=1)`;
  return `${num(s.median, digits)}${unit} (${num(s.min, digits)}–${num(s.max, digits)}, n=${s.n})`;
}

/** Least-squares line y = a + b·x. */
export function linearFit(xs: number[], ys: number[]): { intercept: number; slope: number } {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += ((xs[i] as number) - mx) * ((ys[i] as number) - my);
    sxx += ((xs[i] as number) - mx) ** 2;
  }
  const slope = sxx === 0 ? 0 : sxy / sxx;
  return { intercept: my - slope * mx, slope };
}
