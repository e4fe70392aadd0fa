/**
 * How a deployment cuts its hosts into child workflows (issue 13, item 2): a wave larger than the
 * rollout's `hostsPerChild` runs as several wave children in turn, and the build-first phase builds
 * in children of the same size, so no child's history grows with the fleet. Pure; the workflows
 * (workflows/deploy.ts) use it.
 */

/** Hosts one wave (or build) child takes at most (~28 history events per host in a wave child: well under the 10,240 warning). */
export const DEFAULT_HOSTS_PER_CHILD = 200;

/** The child size a rollout asks for: its `hostsPerChild`, else the default; at least 1. */
export function hostsPerChildOf(hostsPerChild: number | undefined): number {
  return Math.max(1, Math.floor(hostsPerChild ?? DEFAULT_HOSTS_PER_CHILD));
}

/** `items` cut in order into consecutive chunks of at most `perChild` (the last may be smaller); none empty. Linear. */
export function chunksOf<T>(items: readonly T[], perChild: number): T[][] {
  const size = Math.max(1, Math.floor(perChild));
  const out: T[][] = [];
  for (let at = 0; at < items.length; at += size) out.push(items.slice(at, at + size));
  return out;
}

/** A child's workflow id: the first keeps the id a single child had (`<base>`), the k-th (0-based) after it `<base>-<k+1>`. */
export function chunkChildId(base: string, k: number): string {
  return k === 0 ? base : `${base}-${k + 1}`;
}
