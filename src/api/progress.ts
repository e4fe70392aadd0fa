import type { DeploymentStatus, Phase } from '../domain/deployment';
import { summarize, type StatusSummary } from '../domain/host-pages';
import type { LiveHost } from '../domain/live-child';
import { readPage, type HostTransition, type PhaseTransition, type ProgressPage, type Transition } from '../domain/progress';

/** What a subscribed WebSocket client receives, one JSON object per message. */
export type ProgressEvent =
  /**
   * The whole state as of transition `cursor`: first after a subscribe (a late client starts here), and
   * after every change. `reset`: the client's cursor is no longer held (or was never valid), so this
   * snapshot replaces what it had; the transitions in between are summarized by it, not sent.
   */
  | { type: 'snapshot'; deploymentId: string; cursor: number; status: DeploymentStatus; reset?: true }
  /**
   * The `summary` view's state (subscribe with view "summary"): the bounded summary as of `cursor`, in
   * place of the whole status, when it changed (and first, and `reset` as a snapshot's). Its size
   * depends on the number of waves, never on the number of hosts.
   */
  | { type: 'summary'; deploymentId: string; cursor: number; summary: StatusSummary; reset?: true }
  /**
   * The `summary` view's hosts that changed without a transition of their own (the running wave
   * child's, which the deployment numbers only when the child completes): each host's fields as now,
   * at most HOSTS_PER_MESSAGE per message.
   */
  | { type: 'hosts'; deploymentId: string; cursor: number; hosts: LiveHost[] }
  /** One host changed state; `seq` numbers it among all the deployment's transitions, without gaps. */
  | ({ deploymentId: string } & HostTransition)
  | ({ deploymentId: string } & PhaseTransition)
  /**
   * The deployment can change no more (succeeded or closed): the feed stops. `closed`: the workflow
   * execution ended without reaching either phase (TERMINATED, CANCELED, FAILED, TIMED_OUT, …).
   */
  | { type: 'final'; deploymentId: string; outcome?: string; closed?: string }
  | { type: 'error'; deploymentId?: string; status?: number; message: string };

export type Listener = (e: ProgressEvent) => void;

/** What a listener follows: the whole status (`status`, the default) or the bounded summary (`summary`). */
export type FeedView = 'status' | 'summary';

/** Hosts in one `hosts` message (more changed hosts go in several messages). */
export const HOSTS_PER_MESSAGE = 100;

/** The transitions after a cursor with the bounded summary, and the running child's hosts. */
export interface SummaryFeedPage {
  cursor: number;
  oldest: number;
  events: Transition[];
  summary: StatusSummary;
  live: LiveHost[];
}

export interface ProgressOptions {
  /** The transitions after a cursor (the workflow's progressSince query). */
  progress: (deploymentId: string, since: number | null) => Promise<ProgressPage>;
  /**
   * The same at any fleet size: the transitions with the bounded summary (progressSummarySince). Asked
   * in place of `progress` while every listener of a feed follows the summary view; without it the
   * summary is cut from `progress`'s status.
   */
  summary?: (deploymentId: string, since: number | null) => Promise<SummaryFeedPage>;
  pollMs?: number;
  onError?: (deploymentId: string, err: unknown) => void;
  /**
   * How the deployment's execution ended, or undefined while it runs. Asked when a feed has seen
   * nothing new for `idlePolls` polls: a deployment terminated, cancelled or failed outside its own
   * code keeps answering its last state (a worker replays it), and would otherwise be followed forever.
   */
  closed?: (deploymentId: string) => Promise<string | undefined>;
  /** Default 8 (2 s at the default 250 ms). */
  idlePolls?: number;
}

type FeedOptions = Required<Pick<ProgressOptions, 'progress' | 'pollMs' | 'idlePolls'>> & Pick<ProgressOptions, 'onError' | 'closed' | 'summary'>;

/** One poll's answer, whichever query gave it: `status` only from `progress`. */
interface FeedPage {
  cursor: number;
  oldest: number;
  events: Transition[];
  status?: DeploymentStatus;
  summary: StatusSummary;
  /** The hosts whose changes `summary` listeners are told of (the status's, or the running child's). */
  hosts: ReadonlyArray<LiveHost>;
  /** Which query: a change of source starts the host comparison over. */
  source: 'status' | 'summary';
}

const FINAL_PHASES: readonly Phase[] = ['succeeded', 'closed'];

interface ListenerState {
  /** The last transition this listener has (undefined: none yet; it starts from a snapshot). */
  cursor: number | undefined;
  /** Whether it has had a snapshot. */
  primed: boolean;
  finalSent: boolean;
  view: FeedView;
}

class DeploymentFeed {
  readonly listeners = new Map<Listener, ListenerState>();
  last: FeedPage | undefined;
  private lastJson = '';
  private lastSummaryJson = '';
  /** Each followed host as last seen (JSON), to tell `summary` listeners which changed. */
  private hostJson = new Map<string, string>();
  private hostSource: FeedPage['source'] | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** The query in flight, if any: closing waits for it (no call outlives the API). */
  private inflight: Promise<unknown> | undefined;
  private polling = false;
  private final = false;
  private notFound = false;
  /** How the execution ended when it ended outside the workflow's own phases. */
  private closedAs: string | undefined;
  private idle = 0;

  constructor(
    readonly deploymentId: string,
    private readonly opts: FeedOptions,
  ) {}

  /** `since`: the last transition the listener has (a client reconnecting); it gets everything after it. */
  add(listener: Listener, since?: number, view: FeedView = 'status'): void {
    const st: ListenerState = { cursor: since, primed: false, finalSent: false, view };
    this.listeners.set(listener, st);
    // A late client: the state as of the latest page (one that holds its view's state), then everything after it.
    const state = this.last ? this.stateEvent(this.last, view, false) : undefined;
    if (since === undefined && this.last && state) {
      listener(state);
      st.cursor = this.last.cursor;
      st.primed = true;
      if (this.final) this.sendFinal(listener, st);
      return;
    }
    // A reconnecting client, or the first one: a page now serves it (a query in flight may already).
    if (!this.polling) {
      if (this.timer) clearTimeout(this.timer);
      void this.poll();
    }
  }

  private sendFinal(listener: Listener, st: ListenerState): void {
    if (st.finalSent || !this.last) return;
    st.finalSent = true;
    const outcome = this.last.summary.outcome ?? this.closedAs?.toLowerCase();
    listener({ type: 'final', deploymentId: this.deploymentId, ...(outcome ? { outcome } : {}), ...(this.closedAs ? { closed: this.closedAs } : {}) });
  }

  /** Ask from the furthest-behind listener's cursor, so one page serves every listener. */
  private since(): number | null {
    let min: number | undefined;
    for (const st of this.listeners.values()) if (st.cursor !== undefined && (min === undefined || st.cursor < min)) min = st.cursor;
    return min ?? this.last?.cursor ?? null;
  }

  private async poll(): Promise<void> {
    if (this.stopped || this.polling) return;
    this.polling = true;
    this.timer = undefined;
    let page: FeedPage | undefined;
    try {
      const call = this.fetch(this.since());
      this.inflight = call.catch(() => undefined);
      page = await call;
    } catch (err) {
      this.opts.onError?.(this.deploymentId, err);
      const e = err as { code?: string; message?: string };
      if (e.code === 'NOT_FOUND' && this.last === undefined) {
        this.final = true;
        this.notFound = true;
        this.polling = false;
        for (const l of this.listeners.keys()) l({ type: 'error', deploymentId: this.deploymentId, status: 404, message: e.message ?? 'not found' });
        return;
      }
    }
    if (page && !this.stopped) {
      const news = this.deliver(page);
      this.idle = news ? 0 : this.idle + 1;
      if (!this.final && this.idle >= this.opts.idlePolls && this.opts.closed) {
        this.idle = 0;
        const ended = await this.opts.closed(this.deploymentId).catch(() => undefined);
        if (ended && !this.stopped) {
          this.closedAs = ended;
          this.final = true;
          for (const [l, st] of this.listeners) this.sendFinal(l, st);
        }
      }
    }
    this.polling = false;
    if (this.stopped) return;
    if (this.final && ![...this.listeners.values()].some((st) => !st.finalSent)) return;
    this.timer = setTimeout(() => void this.poll(), this.opts.pollMs);
  }

  /**
   * One poll: the whole status while any listener follows it (or no summary query is given), else the
   * bounded summary. Either way one query per deployment per poll, shared by every listener.
   */
  private async fetch(since: number | null): Promise<FeedPage> {
    const wantsStatus = [...this.listeners.values()].some((st) => st.view === 'status');
    if (!wantsStatus && this.opts.summary) {
      const p = await this.opts.summary(this.deploymentId, since);
      return { cursor: p.cursor, oldest: p.oldest, events: p.events, summary: p.summary, hosts: p.live, source: 'summary' };
    }
    const p = await this.opts.progress(this.deploymentId, since);
    return { cursor: p.cursor, oldest: p.oldest, events: p.events, status: p.status, summary: summarize(p.status), hosts: p.status.hosts, source: 'status' };
  }

  /** The listener's view of the state as of `page` (undefined: a status listener, a page without the status). */
  private stateEvent(page: FeedPage, view: FeedView, reset: boolean): ProgressEvent | undefined {
    const r = reset ? { reset: true as const } : {};
    if (view === 'summary') return { type: 'summary', deploymentId: this.deploymentId, cursor: page.cursor, summary: page.summary, ...r };
    return page.status ? { type: 'snapshot', deploymentId: this.deploymentId, cursor: page.cursor, status: page.status, ...r } : undefined;
  }

  /** The followed hosts that changed since the last page, without a transition in this page (none when the source changed). */
  private changedHosts(page: FeedPage): LiveHost[] {
    const fresh = this.hostSource !== page.source;
    const moved = new Set(page.events.flatMap((e) => (e.type === 'host' ? [e.host] : [])));
    const next = new Map<string, string>();
    const out: LiveHost[] = [];
    for (const h of page.hosts) {
      const json = JSON.stringify(h);
      next.set(h.name, json);
      if (!fresh && this.hostJson.get(h.name) !== json && !moved.has(h.name)) out.push(h);
    }
    // The status's hosts are all of them; the running child's come and go (kept while the same source answers).
    if (page.source === 'summary' && !fresh) for (const [k, v] of this.hostJson) if (!next.has(k)) next.set(k, v);
    this.hostJson = next;
    this.hostSource = page.source;
    return out;
  }

  /** Hands the page to every listener; true when it held anything new. */
  private deliver(page: FeedPage): boolean {
    const json = page.status ? JSON.stringify(page.status) : this.lastJson;
    const summaryJson = JSON.stringify(page.summary);
    const changed = json !== this.lastJson;
    const summaryChanged = summaryJson !== this.lastSummaryJson;
    const changedHosts = this.changedHosts(page);
    this.last = page;
    this.lastJson = json;
    this.lastSummaryJson = summaryJson;
    if (FINAL_PHASES.includes(page.summary.phase)) this.final = true;
    for (const [l, st] of this.listeners) {
      const state = (reset: boolean): void => {
        const e = this.stateEvent(page, st.view, reset);
        if (e) l(e);
      };
      if (st.cursor === undefined) {
        state(false);
      } else {
        const r = readPage(st.cursor, page);
        if (r.kind === 'behind') continue;
        if (r.kind === 'reset') state(true);
        else {
          for (const e of r.events) l({ deploymentId: this.deploymentId, ...e });
          if (st.view === 'summary' && st.primed) {
            for (let i = 0; i < changedHosts.length; i += HOSTS_PER_MESSAGE) l({ type: 'hosts', deploymentId: this.deploymentId, cursor: page.cursor, hosts: changedHosts.slice(i, i + HOSTS_PER_MESSAGE) });
          }
          // A reconnecting client has its events, then the state they lead to.
          if (!st.primed || (st.view === 'summary' ? summaryChanged || changedHosts.length > 0 : changed) || r.events.length > 0) state(false);
        }
      }
      st.cursor = page.cursor;
      st.primed = true;
      if (this.final) this.sendFinal(l, st);
    }
    return changed || summaryChanged || changedHosts.length > 0 || page.events.length > 0;
  }

  get isDead(): boolean {
    return this.notFound;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** Resolves once no query of this feed is in flight. */
  async settled(): Promise<void> {
    await this.inflight;
  }
}

/**
 * Live progress for WebSocket clients, lossless. The deployment workflow numbers every host and phase
 * transition as it makes it and keeps the latest ones in a ring; one feed per deployment, started by
 * its first subscriber and stopped when the last one leaves, asks the workflow every `pollMs` for the
 * transitions after its cursor (progressSince) and hands each listener those after the listener's own
 * cursor, in order, exactly once. However short a state lasts, its transitions arrive. A listener whose
 * cursor has fallen off the ring gets a snapshot marked `reset` instead.
 */
export class ProgressHub {
  private readonly feeds = new Map<string, DeploymentFeed>();
  private readonly opts: FeedOptions;

  constructor(opts: ProgressOptions) {
    this.opts = { progress: opts.progress, summary: opts.summary, pollMs: opts.pollMs ?? 250, idlePolls: opts.idlePolls ?? 8, onError: opts.onError, closed: opts.closed };
  }

  /**
   * Subscribes. Without `since`, the listener receives a snapshot of the current state first (with its
   * cursor), then every transition after it; with `since` (the last `seq` it had), every transition
   * after that, then a snapshot (or one snapshot marked `reset` when `since` is no longer held).
   * Returns the unsubscribe.
   */
  subscribe(deploymentId: string, listener: Listener, since?: number, view: FeedView = 'status'): () => void {
    let f = this.feeds.get(deploymentId);
    if (!f || f.isDead) {
      if (f) this.retire(f);
      f = new DeploymentFeed(deploymentId, this.opts);
      this.feeds.set(deploymentId, f);
    }
    const feed = f;
    feed.add(listener, since, view);
    return () => {
      feed.listeners.delete(listener);
      if (feed.listeners.size === 0) {
        this.retire(feed);
        if (this.feeds.get(deploymentId) === feed) this.feeds.delete(deploymentId);
      }
    };
  }

  /** Deployments with a running feed (tests check that the last unsubscribe stops it). */
  get active(): string[] {
    return [...this.feeds.keys()];
  }

  /** Feeds stopped whose last query may still be in flight. */
  private readonly retired = new Set<DeploymentFeed>();

  private retire(f: DeploymentFeed): void {
    f.stop();
    this.retired.add(f);
    void f.settled().then(() => this.retired.delete(f));
  }

  /** Stops every feed and waits for their queries in flight, so none outlives the Temporal connection. */
  async close(): Promise<void> {
    for (const f of this.feeds.values()) this.retire(f);
    this.feeds.clear();
    await Promise.all([...this.retired].map((f) => f.settled()));
  }
}
