import { CancellationScope, log, patched, proxyActivities, setCurrentDetails, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { DeployActivities } from '../src/domain/activities';
import { storableAuditEntry, type RawAuditEntry } from '../src/domain/audit';
import type { AuditEntry, DeployInput, DeploymentStatus, HostSpec, HostState, HostStatus, Phase, RolloutPolicy } from '../src/domain/deployment';
import { deploymentCurrentDetails } from '../src/domain/presentation';
import { hostTransition, TransitionRing } from '../src/domain/progress';
import { deployOrder, type DeployOrder, type SagaFacts } from '../src/domain/saga';
import { auditRefusal, auditStep, failureOf, hostStepFor, stepper } from './common';
import { hostOpsInChildren, hostOpsPerChild, INLINE_HOST_OPS } from './host-ops';

/**
 * What one deployment knows and how it records it: the status the queries answer, every host and
 * phase transition numbered for the live feed, and the audit trail written to the durable store.
 * Bookkeeping only: the rules are in src/domain/saga.ts, the story in deploy.ts.
 */
export class DeploymentRecord {
  readonly step = stepper();
  readonly status: DeploymentStatus;
  readonly hosts: HostStatus[];
  readonly order: DeployOrder;
  /** The merge is this deployment's own (it deployed a pull request): its compensation reverts it. */
  ownMerge = false;
  /** `failed-hosts`: finished within the budget, only the failed hosts are to be undone. */
  scope: SagaFacts['scope'] = 'deployment';
  /** A manual rollback is running. */
  busy = false;
  /** Who made the revert in status.revert (the automatic compensation, or an operator). */
  revertedBy: string | undefined;
  /** What the build-first phase built per host (the switch must land exactly there). */
  targets: Record<string, string> = {};
  /**
   * Started with `patched('a-bounded-child-records')`: no per-host signal, the waves' records come
   * in their results, and per-host work of more than a few hosts runs in children (workflows/host-ops.ts).
   */
  bounded = false;
  /** Started with `patched('a-bytes-hosts-by-ref')`: children take hosts by reference (workflows/hosts-by-ref.ts). */
  byRef = false;
  /** Rollbacks run in children so far (their ids are numbered by it). */
  hostOpsRuns = 0;
  private readonly byName: Map<string, HostStatus>;
  private readonly specs: Map<string, HostSpec>;
  // Numbered in the order the workflow makes (or, for a wave's hosts, receives) them; readers page
  // through the ring with progressSince(cursor). Memory only: a replay rebuilds the same numbers.
  readonly transitions = new TransitionRing();
  private readonly auditWrites: Array<Promise<void>> = [];
  private detailsDeferred = 0;
  private readonly phaseListeners: Array<(from: Phase, to: Phase) => void> = [];

  constructor(
    readonly input: DeployInput,
    readonly rollout: RolloutPolicy,
  ) {
    const waveOf = new Map<string, string>();
    for (const w of rollout.waves) for (const h of w.hosts) waveOf.set(h, w.name);
    const held = new Set(rollout.held);
    this.hosts = input.hosts.map((h) => {
      const wave = waveOf.get(h.name);
      return { name: h.name, kind: h.kind, state: held.has(h.name) ? 'held' : 'pending', ...(wave ? { wave } : {}) };
    });
    this.byName = new Map(this.hosts.map((h) => [h.name, h]));
    this.specs = new Map(input.hosts.map((h) => [h.name, h]));
    this.order = deployOrder(rollout);
    this.status = {
      deploymentId: input.deploymentId,
      phase: 'starting',
      repository: input.repository,
      change: input.change,
      hosts: this.hosts,
      audit: [],
      waves: rollout.waves.map((w) => ({ name: w.name, hosts: w.hosts, state: 'pending' })),
    };
  }

  host(name: string): HostStatus | undefined {
    return this.byName.get(name);
  }
  spec(name: string): HostSpec {
    return this.specs.get(name) as HostSpec;
  }
  facts(): SagaFacts {
    const s = this.status;
    return { phase: s.phase, hosts: this.hosts, order: this.order, mergeSha: s.mergeSha, revert: s.revert, ownMerge: this.ownMerge, scope: this.scope, busy: this.busy };
  }

  /** Records a host's change of state (after its detail fields were set, so the transition carries them). */
  hostMoved(h: HostStatus, from: HostState): void {
    if (h.state === from) return;
    this.status.progressCursor = this.transitions.record((seq) => hostTransition(h, from, seq, new Date().toISOString())).seq;
    this.showDetails();
  }
  moveHost(h: HostStatus, to: HostState): void {
    const from = h.state;
    h.state = to;
    this.hostMoved(h, from);
  }
  /** Every host still pending will not be attempted any more. */
  notAttempted(): void {
    this.batch(() => {
      for (const h of this.hosts) if (h.state === 'pending') this.moveHost(h, 'not-attempted');
    });
  }
  /**
   * Runs `fn` with the details refresh (a count over every host) deferred to its end: applying a
   * child's records stays linear in the hosts. Memory only (the details add nothing to the history).
   */
  batch<T>(fn: () => T): T {
    this.detailsDeferred += 1;
    try {
      return fn();
    } finally {
      this.detailsDeferred -= 1;
      if (this.detailsDeferred === 0) this.showDetails();
    }
  }
  setPhase(phase: Phase): void {
    const s = this.status;
    const from = s.phase;
    s.phase = phase;
    if (from !== phase) {
      s.progressCursor = this.transitions.record((seq) => ({ seq, type: 'phase' as const, from, to: phase, ...(s.outcome ? { outcome: s.outcome } : {}), at: new Date().toISOString() })).seq;
      this.showDetails();
      for (const listener of this.phaseListeners) listener(from, phase);
    }
    if (this.input.searchAttributes) upsertSearchAttributes({ NixfleetPhase: [phase] });
    log.info('phase', { phase });
  }

  /**
   * Temporal Web's "current details" (the workflow metadata query): the phase, the running wave and
   * the host counts, refreshed on every recorded transition. Held in memory and answered by the
   * query, it adds nothing to the history.
   */
  private showDetails(): void {
    if (this.detailsDeferred > 0) return;
    setCurrentDetails(deploymentCurrentDetails(this.status));
  }

  /** Called after every change of phase (notifications, workflows/notify.ts). */
  onPhase(listener: (from: Phase, to: Phase) => void): void {
    this.phaseListeners.push(listener);
  }
  /** Work the deployment does not wait for, but its close does (a notification's delivery); it must not reject. */
  track(work: Promise<void>): void {
    this.auditWrites.push(work);
  }

  /**
   * Appends to the trail and writes it to the durable store (in order; the deployment does not close
   * before every write ended). Bounded first, so nothing from outside makes the store refuse it; an
   * entry refused all the same fails once, is listed in `auditFailures`, and never holds the close.
   */
  audit(entry: Omit<RawAuditEntry, 'at'>): void {
    const full: AuditEntry = storableAuditEntry({ at: new Date().toISOString(), ...entry });
    const s = this.status;
    s.audit.push(full);
    const seq = s.audit.length;
    this.auditWrites.push(
      proxyActivities<DeployActivities>({ ...auditStep, activityId: `audit-${seq}`, summary: `audit: ${full.actor.slice(0, 60)} ${full.action}` })
        .recordAudit({ deploymentId: this.input.deploymentId, runId: workflowInfo().runId, seq, repository: `${this.input.repository.owner}/${this.input.repository.name}`, entry: full })
        .catch((err: unknown) => {
          const f = failureOf(err);
          (s.auditFailures ??= []).push({ seq, action: full.action, type: f.type, error: f.message.slice(0, 1000) });
          log.error('audit entry not recorded', { seq, action: full.action, type: f.type, error: f.message });
        }),
    );
  }

  /** A refused request, bounded (workflows/common.ts auditRefusal). */
  auditRefusal(entry: Omit<RawAuditEntry, 'at'>): void {
    auditRefusal(this.status, entry, (e) => this.audit(e));
  }

  /**
   * Every close goes through here: the GC roots that pinned each recorded host's way back are removed
   * (best effort: a host unreachable now keeps them), then every audit write is awaited.
   * patched: histories recorded before the roots existed replay without these activities.
   */
  async flush(): Promise<void> {
    if (patched('release-gc-roots')) {
      const recorded = this.hosts.filter((h) => h.before !== undefined);
      if (this.bounded && recorded.length > INLINE_HOST_OPS) {
        await CancellationScope.nonCancellable(() =>
          hostOpsInChildren(
            `${this.input.deploymentId}-release`,
            { deploymentId: this.input.deploymentId, deploymentRunId: workflowInfo().runId, op: 'release' },
            [{ maxParallel: Math.max(1, ...this.rollout.waves.map((w) => w.maxParallel)), hosts: recorded.map((h) => ({ host: this.spec(h.name) })) }],
            hostOpsPerChild(this.rollout.hostsPerChild),
            (results) => {
              for (const r of results) if (r.error) log.warn('GC roots not removed', { host: r.name, error: r.error });
            },
            this.byRef ? this.input.hosts : undefined,
          ),
        );
        // A refused control recorded while the release ran is awaited too (patched: histories from before
        // refused updates were recorded awaited the writes of the time only).
        await CancellationScope.nonCancellable(() => (patched('h-ops-audit-refusals') ? this.drainAuditWrites() : Promise.all(this.auditWrites).then(() => undefined)));
        return;
      }
      await CancellationScope.nonCancellable(async () => {
        await Promise.all(
          recorded
            .map((h) =>
              this.step(hostStepFor('read', this.spec(h.name)), `${h.name}/release`, `remove the deployment's GC roots on ${h.name}`)
                .releaseHost({ deploymentId: this.input.deploymentId, deploymentRunId: workflowInfo().runId, host: this.spec(h.name) })
                .catch((err: unknown) => log.warn('GC roots not removed', { host: h.name, error: failureOf(err).message })),
            ),
        );
      });
    }
    // Work that ends may add more (a notification not delivered is audited): wait until none is left.
    await CancellationScope.nonCancellable(() => this.drainAuditWrites());
  }

  /** Waits for every audit write, those added while waiting too. */
  private async drainAuditWrites(): Promise<void> {
    for (let done = 0; done < this.auditWrites.length; ) {
      const batch = this.auditWrites.slice(done);
      done = this.auditWrites.length;
      await Promise.all(batch);
    }
  }
}
