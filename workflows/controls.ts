import { ApplicationFailure, condition, executeChild, getExternalWorkflowHandle, isCancellation, log, patched, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import { allowedControls, controlAuditAction, controlRefusals, controlRejectReason, controlValidatorReason, controlVerdict, refusalEntry, retryCandidates, retrySucceeded, skippableHosts, type ControlFacts, type ControlRequest, type ControlState } from '../src/domain/controls';
import { fillFlakeRef } from '../src/domain/flake-ref';
import { outcomeOf, type DeployFailure } from '../src/domain/saga';
import { failureOf } from './common';
import type { DeploymentRecord } from './deployment-state';
import { applyChildRecords, recoverSlice } from './wave-report';
import type { Generation, HostStatus } from '../src/domain/deployment';
import { controlSignal, controlsQuery, controlUpdate, waveControlSignal, type ControlOutcome, type WaveControl } from './messages';
import type { Queued } from './operator';
import { waveWorkflow } from './wave';

/**
 * The deployment's side of the operator controls (the rules: src/domain/controls.ts). Pause, resume,
 * abort, skip and promote take effect at once: the state here changes, the running wave child is told
 * (waveControlSignal), and deploy.ts asks `gate()` before each child and `bake()` for each bake. A
 * retry runs in the manual window, in turn with the rollback requests.
 *
 * The update's validator and the signal's handler refuse with the same reason (controlRejectReason);
 * a refused signal is recorded in the audit trail and changes nothing else, however malformed.
 * Deployments started before the controls existed (patched) refuse every control.
 *
 * patched('h-ops-audit-refusals'): the update's validator rejects only a malformed request (and a
 * refusal the trail would not record: REFUSAL_AUDIT_LIMITS); a well-formed one that does not apply
 * reaches the handler, which records the refusal (`refused: <reason>`) and fails the update with
 * the reason. Before it, the validator rejected both and a refused update left no entry.
 */
export class Controls {
  private readonly enabled: boolean;
  /** Refused updates are recorded (patched 'h-ops-audit-refusals'). */
  private readonly auditRefusals: boolean;
  private state: ControlState = { paused: false, skipped: [], retries: 0 };
  private promoted = false;
  private aborted: { by: string; reason?: string } | undefined;
  /** The wave child running now, which the controls are relayed to. */
  private child: string | undefined;

  constructor(
    private readonly d: DeploymentRecord,
    private readonly queue: Queued[],
  ) {
    this.enabled = patched('d-controls');
    this.auditRefusals = this.enabled && patched('h-ops-audit-refusals');
    setHandler(controlsQuery, () => ({ allowed: this.enabled ? allowedControls(this.facts()) : [], skippable: this.enabled ? skippableHosts(this.facts()) : [], state: this.state, ...(this.enabled ? { refused: controlRefusals(this.facts()) } : {}) }));
    setHandler(controlSignal, (request) => {
      void this.handle(request);
    });
    setHandler(controlUpdate, (request) => (this.auditRefusals ? this.handleUpdate(request) : this.handle(request)), {
      validator: (request) => {
        const reason = this.auditRefusals ? controlValidatorReason(request, this.facts(), this.d.status.audit) : this.rejectReason(request);
        if (reason) throw new Error(reason);
      },
    });
  }

  facts(): ControlFacts {
    const s = this.d.status;
    return { phase: s.phase, paused: this.state.paused, aborting: this.aborted !== undefined, busy: this.d.busy, hosts: this.d.hosts, mergeSha: s.mergeSha, revert: s.revert };
  }

  get skipped(): readonly string[] {
    return this.state.skipped;
  }

  /** What a wave child is told as it starts. */
  wave(): WaveControl {
    return { paused: this.state.paused, halted: this.aborted !== undefined, skipped: [...this.state.skipped] };
  }

  /** Starts a wave child: it gets the controls in its input, and every later change by signal. */
  childStarting(workflowId: string): { control?: WaveControl } {
    this.child = workflowId;
    return this.enabled ? { control: this.wave() } : {};
  }

  /** Paused (and not aborted): the next wave child waits for `untilResumed()`. */
  get waiting(): boolean {
    return this.state.paused && this.aborted === undefined;
  }

  /** Waits while paused; then the abort as a failure, if one was accepted meanwhile. */
  async untilResumed(): Promise<DeployFailure | undefined> {
    await condition(() => !this.waiting);
    return this.abortFailure();
  }

  abortFailure(): DeployFailure | undefined {
    return this.aborted ? { kind: 'aborted', ...this.aborted } : undefined;
  }

  /** A wave's bake: ends early on promote or abort. */
  async bake(ms: number): Promise<void> {
    if (!this.enabled) return sleep(ms);
    this.promoted = false;
    await condition(() => this.promoted || this.aborted !== undefined, ms);
  }

  private rejectReason(request: unknown): string | undefined {
    if (!this.enabled) return 'this deployment started before operator controls existed';
    return controlRejectReason(request, this.facts());
  }

  private async handle(request: ControlRequest): Promise<ControlOutcome> {
    const { d } = this;
    const reason = this.rejectReason(request);
    if (reason) {
      const r = request as Partial<ControlRequest> | null;
      d.auditRefusal({ actor: r?.requestedBy, action: controlAuditAction(request), hosts: typeof r?.host === 'string' ? [r.host] : [], outcome: `rejected: ${reason}` });
      return { control: r?.control as ControlRequest['control'], accepted: false, summary: reason, status: d.status };
    }
    if (request.control === 'retry-failed') return this.queueRetry(request);
    const summary = this.apply(request);
    d.audit({ actor: request.requestedBy, action: request.control, hosts: request.host ? [request.host] : [], outcome: request.reason ? `${summary} (${request.reason})` : summary });
    this.show();
    this.relay();
    return { control: request.control, accepted: true, summary, status: d.status };
  }

  /**
   * An update the validator let through (patched 'h-ops-audit-refusals'): one that does not apply is
   * recorded and fails with the reason (an ApplicationFailure, so the update fails, not the task).
   */
  private async handleUpdate(request: ControlRequest): Promise<ControlOutcome> {
    const v = controlVerdict(request, this.facts());
    if (v.kind !== 'accepted') {
      // 'malformed' cannot reach here (the validator rejects it); recorded the same way if it did.
      if (v.kind === 'refused') this.d.audit(refusalEntry(v.request, v.reason));
      throw ApplicationFailure.create({ type: 'ControlRefused', message: v.reason, nonRetryable: true });
    }
    return this.handle(request);
  }

  /** Pause, resume, abort, skip, promote: state only, effective at once. */
  private apply(request: ControlRequest): string {
    const s = this.state;
    switch (request.control) {
      case 'pause':
        s.paused = true;
        s.pausedBy = request.requestedBy;
        return 'paused: no further host starts; the hosts in flight finish';
      case 'resume':
        s.paused = false;
        s.pausedBy = undefined;
        return 'resumed';
      case 'abort':
        this.aborted = { by: request.requestedBy, ...(request.reason ? { reason: request.reason } : {}) };
        s.abortedBy = request.requestedBy;
        s.paused = false;
        return 'aborted: no further host starts; the hosts in flight finish, then the deployment compensates as for a failure';
      case 'skip': {
        const h = this.d.host(request.host as string);
        s.skipped.push(request.host as string);
        if (h) {
          h.warning = `skipped by ${request.requestedBy}`;
          this.d.moveHost(h, 'held');
        }
        return `skipped ${request.host}: it is not deployed`;
      }
      case 'promote':
        this.promoted = true;
        return 'promoted: the bake ends now';
      case 'retry-failed':
        return 'queued';
    }
  }

  /**
   * After a wave child's records are applied: a skip that reached the child after it had started the
   * host did not stop it (a deployment whose waves report by their results cannot know which hosts
   * its child has started; the API refuses such a skip, the workflow's own validator cannot). The
   * host's row says where it is; the skip is withdrawn and the trail says it came too late.
   */
  reconcileSkips(): void {
    const late = this.state.skipped.filter((n) => {
      const h = this.d.host(n);
      return h !== undefined && h.state !== 'held' && h.state !== 'pending';
    });
    if (late.length === 0) return;
    this.state.skipped = this.state.skipped.filter((n) => !late.includes(n));
    for (const n of late) {
      const h = this.d.host(n);
      if (h?.warning?.startsWith('skipped by ')) delete h.warning;
      this.d.audit({ actor: 'nixfleet (automatic)', action: 'skip', hosts: [n], outcome: `the skip of ${n} came after its wave had started it: it was deployed (${h?.state ?? 'unknown'})` });
    }
    this.show();
  }

  /** Tells the running wave child the controls' state (a child that has ended ignores it). */
  private relay(): void {
    const id = this.child;
    if (id === undefined) return;
    getExternalWorkflowHandle(id)
      .signal(waveControlSignal, this.wave())
      .catch((err: unknown) => log.info('wave child not told of a control (it has ended)', { child: id, error: failureOf(err).message }));
  }

  private show(): void {
    this.d.status.controls = { ...this.state, skipped: [...this.state.skipped] };
  }

  private queueRetry(request: ControlRequest): Promise<ControlOutcome> {
    return new Promise<ControlOutcome>((resolve) => {
      this.queue.push({
        job: {
          run: async () => resolve(await this.retry(request)),
          closed: () => resolve({ control: 'retry-failed', accepted: false, summary: 'the deployment closed before this request ran', status: this.d.status }),
        },
      });
    });
  }

  /**
   * Deploys the failed hosts again, wave by wave as the rollout orders them, in a child per wave; the
   * hosts that switched are kept. Every host switched (or held) afterwards: the deployment succeeded
   * and closes; otherwise it awaits the operator again with the outcome recomputed.
   */
  private async retry(request: ControlRequest): Promise<ControlOutcome> {
    const { d } = this;
    // The facts may have changed since the request was accepted (a revert queued before it).
    const reason = this.rejectReason(request);
    if (reason) {
      d.auditRefusal({ actor: request.requestedBy, action: 'retry-failed', hosts: [], outcome: `rejected: ${reason}` });
      return { control: 'retry-failed', accepted: false, summary: reason, status: d.status };
    }
    const hosts = retryCandidates(d.hosts);
    const names = hosts.map((h) => h.name);
    this.state.retries += 1;
    const round = this.state.retries;
    this.show();
    d.busy = true;
    d.setPhase('deploying');
    for (const h of hosts) {
      for (const k of ['error', 'uncertain', 'profileMoved', 'after', 'now', 'warning'] as const) delete h[k];
      d.moveHost(h, 'pending');
    }
    const mergeSha = d.status.mergeSha as string;
    const flakeRef = fillFlakeRef(d.input.flakeRefTemplate, { owner: d.input.repository.owner, repo: d.input.repository.name, sha: mergeSha });
    for (const [i, wave] of d.rollout.waves.entries()) {
      const inWave = names.filter((n) => wave.hosts.includes(n) && d.host(n)?.state === 'pending').map((n) => d.spec(n));
      if (inWave.length === 0) continue;
      const stop = this.waiting ? await this.untilResumed() : this.abortFailure();
      if (stop) break;
      const workflowId = `${d.input.deploymentId}-retry-${round}-wave-${i + 1}`;
      try {
        const result = await executeChild(waveWorkflow, {
          workflowId,
          args: [
            {
              deploymentId: d.input.deploymentId,
              parentWorkflowId: workflowInfo().workflowId,
              wave,
              hosts: inWave,
              flakeRef,
              targets: d.targets,
              // A retry never halts on a failure: each retried host gets its chance.
              budgetLeft: inWave.length,
              failedUnits: d.rollout.failedUnits,
              healthChecks: d.rollout.healthChecks,
              healthGraceSeconds: d.rollout.healthGraceSeconds,
              confirmTimeoutSeconds: d.rollout.confirmTimeoutSeconds,
              ...this.childStarting(workflowId),
              recorded: recordedOf(inWave.map((s) => d.host(s.name))),
              ...(d.bounded ? { report: 'result' as const } : {}),
            },
          ],
        });
        if (d.bounded) {
          applyChildRecords(d, result.records);
          this.reconcileSkips();
        }
      } catch (err) {
        if (isCancellation(err)) throw err;
        if (d.bounded) {
          // Its records went with it: the hosts say which moved (against the pin of the first record).
          await recoverSlice(d, inWave, wave.maxParallel, failureOf(err).message);
          continue;
        }
        for (const h of inWave.map((s) => d.host(s.name))) {
          if (h?.state !== 'switching') continue;
          h.uncertain = `the retry's wave workflow ended while this host was being switched (${failureOf(err).message})`;
          d.moveHost(h, 'failed');
        }
      }
    }
    this.child = undefined;
    this.aborted = undefined;
    this.state.paused = false;
    for (const h of hosts) {
      if (h.state !== 'pending') continue;
      h.error = 'not retried: the retry was aborted';
      d.moveHost(h, 'failed');
    }
    const stillFailed = hosts.filter((h) => h.state !== 'switched' && h.state !== 'held').map((h) => h.name);
    d.busy = false;
    const s = d.status;
    const summary = `retried ${names.join(', ')}: ${stillFailed.length === 0 ? 'all switched' : `still failed: ${stillFailed.join(', ')}`}`;
    d.audit({ actor: request.requestedBy, action: 'retry-failed', hosts: names, outcome: request.reason ? `${summary} (${request.reason})` : summary });
    this.show();
    if (retrySucceeded(d.hosts)) {
      s.outcome = 'succeeded';
      s.failure = undefined;
      s.failedHost = undefined;
      d.setPhase('succeeded');
    } else {
      s.outcome = outcomeOf(d.facts());
      if (stillFailed.length > 0) s.failure = `after retry ${round}: still failed: ${stillFailed.join(', ')}`;
      d.setPhase('awaiting-operator');
    }
    return { control: 'retry-failed', accepted: true, summary, status: s };
  }
}

/** The generations the deployment recorded for these hosts (the way back a retry keeps). */
function recordedOf(hosts: Array<HostStatus | undefined>): Record<string, Generation> {
  const out: Record<string, Generation> = {};
  for (const h of hosts) if (h?.before) out[h.name] = h.before;
  return out;
}
