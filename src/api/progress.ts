import type { DeploymentStatus, HostState, Phase } from '../domain/deployment';

/** What a subscribed WebSocket client receives, one JSON object per message. */
export type ProgressEvent =
  /** The whole current state: first after a subscribe (a late client starts here), then on every change. */
  | { type: 'snapshot'; deploymentId: string; status: DeploymentStatus }
  /** One host changed state. Events for one deployment arrive in the order the poller saw them. */
  | { type: 'host'; deploymentId: string; host: string; from: HostState; to: HostState; error?: string; generation?: number; at: string }
  | { type: 'phase'; deploymentId: string; from: Phase; to: Phase; outcome?: string; at: string }
  /** The deployment can change no more (succeeded or closed): the poller stops. */
  | { type: 'final'; deploymentId: string; outcome?: string }
  | { type: 'error'; deploymentId?: string; status?: number; message: string };

export type Listener = (e: ProgressEvent) => void;

export interface ProgressOptions {
  /** Reads the deployment's state (the workflow's status query). */
  status: (deploymentId: string) => Promise<DeploymentStatus>;
  pollMs?: number;
  onError?: (deploymentId: string, err: unknown) => void;
}

const FINAL_PHASES: readonly Phase[] = ['succeeded', 'closed'];

const IN_PROGRESS: readonly HostState[] = ['switching', 'rolling-back'];
const SETTLING_PHASES: readonly Phase[] = ['awaiting-operator', 'succeeded', 'closed'];

/**
 * The events that turn `prev` into `next`: the phase change and the hosts that changed. Hosts are
 * handled one at a time, so when one poll sees several changes, the hosts that finished a step came
 * before the host that started the next one: finished steps first, then started ones, each in fleet
 * order (e.g. `m2 rolling-back → rolled-back` before `m1 switched → rolling-back`).
 */
export function diffStatus(prev: DeploymentStatus | undefined, next: DeploymentStatus, at: string): ProgressEvent[] {
  const out: ProgressEvent[] = [];
  const id = next.deploymentId;
  const phase: ProgressEvent[] = prev && prev.phase !== next.phase ? [{ type: 'phase', deploymentId: id, from: prev.phase, to: next.phase, ...(next.outcome ? { outcome: next.outcome } : {}), at }] : [];
  // A phase that starts work came before the hosts it moved; one that settles came after them.
  const phaseFirst = prev !== undefined && !SETTLING_PHASES.includes(next.phase);
  if (phaseFirst) out.push(...phase);
  const before = new Map((prev?.hosts ?? []).map((h) => [h.name, h.state]));
  const changed: ProgressEvent[] = [];
  for (const h of next.hosts) {
    const from = before.get(h.name);
    if (from !== undefined && from !== h.state) {
      const generation = h.state === 'switched' ? h.after?.number : h.state === 'rolled-back' ? h.before?.number : undefined;
      changed.push({ type: 'host', deploymentId: id, host: h.name, from, to: h.state, ...(h.error && /failed/.test(h.state) ? { error: h.error } : {}), ...(generation !== undefined ? { generation } : {}), at });
    }
  }
  const started = (e: ProgressEvent): boolean => e.type === 'host' && IN_PROGRESS.includes(e.to);
  out.push(...changed.filter((e) => !started(e)), ...changed.filter(started));
  if (!phaseFirst) out.push(...phase);
  return out;
}

class DeploymentPoller {
  /** Each listener, and whether it has had its first snapshot yet. */
  readonly listeners = new Map<Listener, { primed: boolean }>();
  last: DeploymentStatus | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** The status query in flight, if any: closing waits for it (no call outlives the API). */
  private inflight: Promise<unknown> | undefined;
  private final = false;
  private started = false;

  constructor(
    readonly deploymentId: string,
    private readonly opts: Required<Pick<ProgressOptions, 'status' | 'pollMs'>> & Pick<ProgressOptions, 'onError'>,
  ) {}

  add(listener: Listener): void {
    this.listeners.set(listener, { primed: false });
    if (this.last) this.prime(listener);
    if (!this.started) {
      this.started = true;
      void this.poll();
    }
  }

  private prime(listener: Listener): void {
    const l = this.listeners.get(listener);
    if (!l || l.primed || !this.last) return;
    l.primed = true;
    listener({ type: 'snapshot', deploymentId: this.deploymentId, status: this.last });
    if (this.final) listener({ type: 'final', deploymentId: this.deploymentId, ...(this.last.outcome ? { outcome: this.last.outcome } : {}) });
  }

  private emit(e: ProgressEvent): void {
    for (const [l, st] of this.listeners) if (st.primed) l(e);
  }

  private async poll(): Promise<void> {
    if (this.stopped) return;
    let next: DeploymentStatus | undefined;
    try {
      const call = this.opts.status(this.deploymentId);
      this.inflight = call.catch(() => undefined);
      next = await call;
    } catch (err) {
      this.opts.onError?.(this.deploymentId, err);
      const e = err as { code?: string; message?: string };
      if (e.code === 'NOT_FOUND' && this.last === undefined) {
        this.final = true;
        for (const l of this.listeners.keys()) l({ type: 'error', deploymentId: this.deploymentId, status: 404, message: e.message ?? 'not found' });
        return;
      }
    }
    if (this.stopped) return;
    if (next) {
      const prev = this.last;
      const events = prev ? diffStatus(prev, next, new Date().toISOString()) : [];
      this.last = next;
      if (FINAL_PHASES.includes(next.phase)) this.final = true;
      for (const e of events) this.emit(e);
      if (prev && JSON.stringify(prev) !== JSON.stringify(next)) this.emit({ type: 'snapshot', deploymentId: this.deploymentId, status: next });
      if (prev && this.final) this.emit({ type: 'final', deploymentId: this.deploymentId, ...(next.outcome ? { outcome: next.outcome } : {}) });
      for (const l of this.listeners.keys()) this.prime(l);
      if (this.final) return;
    }
    this.timer = setTimeout(() => void this.poll(), this.opts.pollMs);
  }

  get isFinal(): boolean {
    return this.final;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** Resolves once no status query of this poller is in flight. */
  async settled(): Promise<void> {
    await this.inflight;
  }
}

/**
 * Live progress for WebSocket clients. One poller per deployment, started by its first subscriber and
 * stopped when the last one leaves: it runs the workflow's status query every `pollMs`, diffs it with
 * the previous answer and pushes the differences. A transition shorter than one poll interval is seen
 * as one event (e.g. `switching → rolled-back`): `from`/`to` are always the states the client saw.
 */
export class ProgressHub {
  private readonly pollers = new Map<string, DeploymentPoller>();
  private readonly opts: Required<Pick<ProgressOptions, 'status' | 'pollMs'>> & Pick<ProgressOptions, 'onError'>;

  constructor(opts: ProgressOptions) {
    this.opts = { status: opts.status, pollMs: opts.pollMs ?? 250, onError: opts.onError };
  }

  /**
   * Subscribes; the listener receives a snapshot of the current state first (as soon as the first
   * status query answers), then the events. Returns the unsubscribe.
   */
  subscribe(deploymentId: string, listener: Listener): () => void {
    let p = this.pollers.get(deploymentId);
    if (!p || (p.isFinal && p.last === undefined)) {
      if (p) this.retire(p);
      p = new DeploymentPoller(deploymentId, this.opts);
      this.pollers.set(deploymentId, p);
    }
    const poller = p;
    poller.add(listener);
    return () => {
      poller.listeners.delete(listener);
      if (poller.listeners.size === 0) {
        this.retire(poller);
        if (this.pollers.get(deploymentId) === poller) this.pollers.delete(deploymentId);
      }
    };
  }

  /** Deployments with a running poller (tests check that the last unsubscribe stops it). */
  get active(): string[] {
    return [...this.pollers.keys()];
  }

  /** Pollers stopped whose last query may still be in flight. */
  private readonly retired = new Set<DeploymentPoller>();

  private retire(p: DeploymentPoller): void {
    p.stop();
    this.retired.add(p);
    void p.settled().then(() => this.retired.delete(p));
  }

  /** Stops every poller and waits for their queries in flight, so none outlives the Temporal connection. */
  async close(): Promise<void> {
    for (const p of this.pollers.values()) this.retire(p);
    this.pollers.clear();
    await Promise.all([...this.retired].map((p) => p.settled()));
  }
}
