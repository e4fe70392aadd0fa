/**
 * When a wave's child workflow ends without its result (failed, terminated, timed out), the deployment
 * no longer knows which of that child's hosts it had started, nor their recorded generations: those
 * lived in the child. The hosts know. The record step pinned each recorded generation with a GC root
 * named for the deployment (src/hosts/operations.ts gcRootName), so re-reading a host gives its
 * current generation and, from the pin, the one this deployment recorded. Pure: no I/O.
 *
 * Tested in tests/domain/wave-recovery.test.ts.
 */
import type { Generation } from './deployment';

/** What a host says after its wave ended without a result (activity `rereadRecorded`). */
export interface HostReread {
  /** The profile's generation now. */
  current: Generation;
  /** The generation this deployment recorded (the pinned store path); absent: never recorded. */
  recorded?: Generation;
}

export type Recovery =
  /** No pin of this deployment: the wave never recorded it (it stays pending, then not attempted). */
  | { kind: 'untouched'; current: Generation }
  /** Recorded, and still on the recorded store path: nothing to undo. */
  | { kind: 'unmoved'; recorded: Generation; current: Generation }
  /** Recorded, and its profile moved since: failed, to be rolled back to `recorded`. */
  | { kind: 'moved'; recorded: Generation; current: Generation }
  /** The host could not be read: the deployment cannot tell (failed, uncertain). */
  | { kind: 'unreadable'; error: string };

export function recoveryOf(read: HostReread | { error: string }): Recovery {
  if ('error' in read) return { kind: 'unreadable', error: read.error };
  const { current, recorded } = read;
  if (recorded === undefined) return { kind: 'untouched', current };
  return current.storePath === recorded.storePath ? { kind: 'unmoved', recorded, current } : { kind: 'moved', recorded, current };
}

/**
 * The recorded generation from the pinned store path: the current one when the profile points there,
 * else the highest-numbered generation link that points there; when its link was collected, the
 * store path with a number no link has (one above the highest): the rollback then finds no link for it
 * and makes the pinned store path a new generation (`nix-env --set`), as for any recorded link
 * collected away.
 */
export function recordedFromPin(pinned: string, current: Generation, generations: readonly Generation[]): Generation {
  if (current.storePath === pinned) return { number: current.number, storePath: pinned };
  let best: Generation | undefined;
  let highest = current.number;
  for (const g of generations) {
    if (g.number > highest) highest = g.number;
    if (g.storePath === pinned && (best === undefined || g.number > best.number)) best = g;
  }
  return { number: best?.number ?? highest + 1, storePath: pinned };
}
