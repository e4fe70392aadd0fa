/**
 * The deployment's transitions, numbered where they happen (in the deployment workflow), and a bounded
 * ring of the latest ones that readers page through with a cursor ("everything after N").
 * Pure code, bundled into the workflow: no Node built-ins, no libraries.
 */
import type { DeploymentStatus, HostState, HostStatus, Phase } from './deployment';

/** One host changed state. `seq` orders it among every transition of the deployment (1, 2, 3, …). */
export interface HostTransition {
  seq: number;
  type: 'host';
  host: string;
  from: HostState;
  to: HostState;
  /** Why it failed (a state that ends in "failed"). */
  error?: string;
  /** The generation the host is now on (switched: the new one; rolled-back: the recorded one). */
  generation?: number;
  /** Workflow time of the transition. */
  at: string;
}

export interface PhaseTransition {
  seq: number;
  type: 'phase';
  from: Phase;
  to: Phase;
  outcome?: string;
  at: string;
}

export type Transition = HostTransition | PhaseTransition;

/** The answer to `progressSince(cursor)`. */
export interface ProgressPage {
  /** The sequence number of the latest transition (0: none yet). `status` is the state as of it. */
  cursor: number;
  /** The first sequence number the ring still holds (`cursor + 1` when it holds none). */
  oldest: number;
  /** The transitions after the asked cursor that the ring holds, in order. */
  events: Transition[];
  status: DeploymentStatus;
}

/** Transitions the workflow keeps for readers; a reader further behind gets a fresh snapshot. */
export const PROGRESS_RING_SIZE = 2000;

/** The host transition from `from` to `host.state`, as it stands now (error and generation included). */
export function hostTransition(host: HostStatus, from: HostState, seq: number, at: string): HostTransition {
  const generation = host.state === 'switched' ? host.after?.number : host.state === 'rolled-back' ? (host.now ?? host.before)?.number : undefined;
  return {
    seq,
    type: 'host',
    host: host.name,
    from,
    to: host.state,
    ...(host.error !== undefined && /failed/.test(host.state) ? { error: host.error } : {}),
    ...(generation !== undefined ? { generation } : {}),
    at,
  };
}

/** The last `capacity` transitions, numbered from 1 in the order they are recorded. */
export class TransitionRing {
  private readonly slots: Array<Transition | undefined>;
  private last = 0;

  constructor(readonly capacity: number = PROGRESS_RING_SIZE) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`capacity: a positive integer (got ${capacity})`);
    this.slots = new Array<Transition | undefined>(capacity);
  }

  /** The sequence number of the latest transition (0: none yet). */
  get cursor(): number {
    return this.last;
  }

  /** The first sequence number still held. */
  get oldest(): number {
    return Math.max(1, this.last - this.capacity + 1);
  }

  /** Numbers the transition (the next sequence number) and keeps it, dropping the oldest when full. */
  record<T extends Transition>(make: (seq: number) => T): T {
    const t = make(this.last + 1);
    this.last = t.seq;
    this.slots[(t.seq - 1) % this.capacity] = t;
    return t;
  }

  /**
   * The transitions after `since` that are still held, in order; none for null (a reader that wants the
   * status only). A cursor that is not a whole number, is behind the ring or ahead of the latest
   * transition gets every transition held (other readers behind the same page may need them): the
   * reader compares its cursor with `oldest` and `cursor` to tell that it must start over.
   */
  since(since: unknown): Transition[] {
    if (since === null || since === undefined) return [];
    const valid = typeof since === 'number' && Number.isInteger(since) && since >= this.oldest - 1 && since <= this.last;
    const from = valid ? (since as number) + 1 : this.oldest;
    const out: Transition[] = [];
    for (let seq = from; seq <= this.last; seq++) out.push(this.slots[(seq - 1) % this.capacity] as Transition);
    return out;
  }

  page(since: unknown, status: DeploymentStatus): ProgressPage {
    return { cursor: this.last, oldest: this.last === 0 ? 1 : this.oldest, events: this.since(since), status };
  }
}

/**
 * What a reader at `cursor` does with a page: take the events after its cursor (`events`), start over
 * from the page's status because its cursor is no longer held or never was valid (`reset`), or wait for
 * the next page because this one was asked from further on than it is (`behind`).
 */
export function readPage(cursor: number, page: Pick<ProgressPage, 'cursor' | 'oldest' | 'events'>): { kind: 'events'; events: Transition[] } | { kind: 'reset' } | { kind: 'behind' } {
  if (!Number.isInteger(cursor) || cursor < page.oldest - 1 || cursor > page.cursor) return { kind: 'reset' };
  // The page's events are contiguous and end at its cursor: they cover (first - 1, page.cursor].
  const first = page.events[0]?.seq ?? page.cursor + 1;
  if (cursor < first - 1) return { kind: 'behind' };
  return { kind: 'events', events: page.events.filter((e) => e.seq > cursor) };
}
