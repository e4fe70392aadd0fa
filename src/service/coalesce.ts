/**
 * Coalesced reads of a deployment's state (issue 13): however many dashboards, HTTP clients and the
 * progress hub read one deployment, at most one workflow query per deployment is in flight, and every
 * reader waiting for it shares its answer. Twenty dashboards on one deployment then cost the
 * workflow one query at a time, never a burst that fills Temporal's per-workflow query buffer
 * ("consistent query buffer is full").
 *
 * Pure of Temporal: the query is a function given to the constructor.
 */
import type { ProgressPage, Transition } from '../domain/progress';

/** A page of transitions after a cursor, with whatever state it carries (the whole status, or the summary). */
export interface CursorPage {
  cursor: number;
  events: Transition[];
}

interface Flight<P> {
  since: number | null;
  promise: Promise<P>;
  /** Set by invalidate(): it started before a change, so no new reader joins it and its answer is not kept. */
  stale?: boolean;
}

interface State<P> {
  inflight?: Flight<P>;
  /** Readers that the flight in progress cannot serve (their cursor is below its `since`): the next query, which serves them all. */
  queued?: Flight<P> & { widen(since: number | null): void };
  /** The last answer, served for maxAgeMs to readers it covers. */
  last?: { since: number | null; page: P; at: number };
  timer?: NodeJS.Timeout;
}

/** A page asked from `since` serves a reader at `cursor`: it holds every transition after it. */
function covers(since: number | null, cursor: number | null): boolean {
  return cursor === null || (since !== null && since <= cursor);
}

function lower(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.min(a, b);
}

/** The page as `progressSince(cursor)` would have answered it: the transitions after `cursor` (none for null). */
export function pageFor<P extends CursorPage>(page: P, cursor: number | null): P {
  return { ...page, events: cursor === null ? [] : page.events.filter((e) => e.seq > cursor) };
}

export interface SharedProgressOptions {
  /** How long an answer is served to new readers without a new query (default 0: only while in flight). */
  maxAgeMs?: number;
  now?: () => number;
}

export class SharedProgress<P extends CursorPage = ProgressPage> {
  private readonly states = new Map<string, State<P>>();
  private readonly maxAgeMs: number;
  private readonly now: () => number;
  /** Queries sent (for the metrics and the tests). */
  queries = 0;

  constructor(
    private readonly query: (deploymentId: string, since: number | null) => Promise<P>,
    opts: SharedProgressOptions = {},
  ) {
    this.maxAgeMs = opts.maxAgeMs ?? 0;
    this.now = opts.now ?? Date.now;
  }

  private state(id: string): State<P> {
    let st = this.states.get(id);
    if (!st) {
      st = {};
      this.states.set(id, st);
    }
    return st;
  }

  private launch(id: string, st: State<P>, since: number | null): Flight<P> {
    this.queries += 1;
    const promise = this.query(id, since);
    const flight: Flight<P> = { since, promise };
    st.inflight = flight;
    promise.then(
      (page) => {
        if (st.inflight === flight) st.inflight = undefined;
        if (!flight.stale) st.last = { since, page, at: this.now() };
        this.forgetLater(id, st);
      },
      () => {
        if (st.inflight === flight) st.inflight = undefined;
        this.forgetLater(id, st);
      },
    );
    return flight;
  }

  /** Drops the deployment's entry once nothing is in flight or queued and its answer is too old to serve. */
  private forgetLater(id: string, st: State<P>): void {
    if (st.timer) clearTimeout(st.timer);
    st.timer = setTimeout(() => {
      if (!st.inflight && !st.queued && this.states.get(id) === st) this.states.delete(id);
    }, this.maxAgeMs + 1);
    st.timer.unref();
  }

  /** The deployment's progress after `cursor` (null: a snapshot), from the query in flight when it covers the reader. */
  async get(id: string, cursor: number | null): Promise<P> {
    const st = this.state(id);
    const last = st.last;
    if (last && this.now() - last.at <= this.maxAgeMs && covers(last.since, cursor) && (cursor === null || cursor <= last.page.cursor)) {
      return pageFor(last.page, cursor);
    }
    const flight = st.inflight;
    if (flight && !flight.stale && covers(flight.since, cursor)) {
      const page = await flight.promise;
      // A reader ahead of the page (it saw a newer one elsewhere) asks again rather than go back.
      if (cursor !== null && cursor > page.cursor) return this.get(id, cursor);
      return pageFor(page, cursor);
    }
    if (!flight) return pageFor(await this.launch(id, st, cursor).promise, cursor);
    // One in flight that cannot serve this reader: the next query, after it, serves every such reader.
    if (st.queued) st.queued.widen(cursor);
    else {
      let since = cursor;
      const queued: NonNullable<State<P>['queued']> = {
        get since() {
          return since;
        },
        widen: (c) => {
          since = lower(since, c);
        },
        promise: flight.promise
          .catch(() => undefined)
          .then(() => {
            if (st.queued === queued) st.queued = undefined;
            return this.launch(id, st, since).promise;
          }),
      };
      st.queued = queued;
    }
    return pageFor(await st.queued.promise, cursor);
  }

  /** After a change through the API (an action): no reader gets an answer asked before it. */
  invalidate(id: string): void {
    const st = this.states.get(id);
    if (!st) return;
    st.last = undefined;
    if (st.inflight) st.inflight.stale = true;
  }

  /** Deployments with an entry (tests: entries go once unused). */
  get size(): number {
    return this.states.size;
  }
}

/**
 * One call in flight per key, shared by every caller while it runs (and for maxAgeMs after). For the
 * whole `status(id)` read (describe, then the result or the query), so that readers of a closed
 * deployment share its describe and result too.
 */
export class SingleFlight<T> {
  private readonly flights = new Map<string, { promise: Promise<T>; at?: number }>();

  constructor(private readonly maxAgeMs = 0) {}

  run(key: string, fn: () => Promise<T>): Promise<T> {
    const f = this.flights.get(key);
    if (f && (f.at === undefined || Date.now() - f.at <= this.maxAgeMs)) return f.promise;
    const entry: { promise: Promise<T>; at?: number } = { promise: fn() };
    this.flights.set(key, entry);
    entry.promise.then(
      () => {
        entry.at = Date.now();
        const t = setTimeout(() => this.flights.get(key) === entry && this.flights.delete(key), this.maxAgeMs + 1);
        t.unref();
      },
      () => {
        if (this.flights.get(key) === entry) this.flights.delete(key);
      },
    );
    return entry.promise;
  }

  forget(key: string): void {
    this.flights.delete(key);
  }
}

/**
 * The last good answer per key, for a read the worker could not answer in time: at most `maxEntries`
 * keys (the oldest written goes first), each kept `maxAgeMs`. A reader gets it with its age, never
 * silently (`staleMs`).
 */
export class LastGood<T> {
  private readonly entries = new Map<string, { value: T; at: number }>();

  constructor(
    private readonly maxAgeMs: number,
    private readonly maxEntries: number,
  ) {}

  remember(key: string, value: T): void {
    this.entries.delete(key);
    this.entries.set(key, { value, at: Date.now() });
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
  }

  /** The last answer for `key` and its age in ms, when it is at most maxAgeMs old. */
  recall(key: string): { value: T; ageMs: number } | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    const ageMs = Date.now() - e.at;
    if (ageMs > this.maxAgeMs) {
      this.entries.delete(key);
      return undefined;
    }
    return { value: e.value, ageMs };
  }
}
