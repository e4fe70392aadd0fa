import {
  CancellationScope,
  ParentClosePolicy,
  condition,
  executeChild,
  isCancellation,
  log,
  patched,
  proxyActivities,
  proxySinks,
  setHandler,
  sleep,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { DeployActivities } from '../src/domain/activities';
import type {
  AuditEntry,
  DeployInput,
  DeploymentOutcome,
  DeploymentStatus,
  Generation,
  HostSpec,
  HostState,
  HostStatus,
  ManualAction,
  Phase,
  RevertOutcome,
  RollbackPreview,
  RollbackRequest,
  RolloutPolicy,
  Wave,
} from '../src/domain/deployment';
import { AUDIT_LIMITS, clip, storableAuditEntry, type RawAuditEntry } from '../src/domain/audit';
import { failedOutcome } from '../src/domain/outcome';
import type { DeployerSinks } from './sinks';
import { buildWorkflow } from './build';
import { auditStep, failureOf, githubStep, hostStep, hostUpdateSignal, pool, readStep, stepper } from './common';
import { fleetLockId, fleetLockWorkflow, legacyFleetLockId } from './fleet-lock';
import { hostTransition, TransitionRing } from '../src/domain/progress';
import { progressSinceQuery, rollbackPreviewQuery, rollbackSignal, rollbackUpdate, statusQuery } from './messages';
import type { RollbackOutcome } from './messages';
import { waveWorkflow } from './wave';

/** Hosts one wave child deploys at most (~28 history events per host: well under the 10,240 warning). */
export const DEFAULT_HOSTS_PER_CHILD = 200;

/** The rollout when the input names none: one wave of every host in order, one at a time. */
export function defaultRollout(hosts: HostSpec[]): RolloutPolicy {
  return {
    waves: [{ name: 'all', hosts: hosts.map((h) => h.name), maxParallel: 1, bakeSeconds: 0 }],
    failureBudget: 0,
    held: [],
    buildFirst: false,
    failedUnits: 'fatal',
    healthChecks: [],
    healthGraceSeconds: 0,
    allowQuarantined: false,
    confirmTimeoutSeconds: 0,
  };
}

/**
 * One deployment of a merged flake.lock update: merge (guarded by the head sha), then per host in order
 * record → switch → verify. The first failure halts the sequence; the compensations (GitHub revert,
 * rollback of every host that changed to its recorded generation, in reverse order) run in a scope that
 * cancellation cannot interrupt. A failed deployment then stays open for a manual rollback.
 */
const { deployments: deploymentSink } = proxySinks<DeployerSinks>();

export async function deployWorkflow(input: DeployInput): Promise<DeploymentStatus> {
  const step = stepper();
  const rollout = input.rollout ?? defaultRollout(input.hosts);
  const waveOf = new Map<string, Wave>();
  for (const w of rollout.waves) for (const h of w.hosts) waveOf.set(h, w);
  const held = new Set(rollout.held);
  const hosts: HostStatus[] = input.hosts.map((h) => ({
    name: h.name,
    kind: h.kind,
    state: held.has(h.name) ? 'held' : 'pending',
    ...(waveOf.get(h.name) ? { wave: (waveOf.get(h.name) as Wave).name } : {}),
  }));
  const byName = new Map(hosts.map((h) => [h.name, h]));
  const status: DeploymentStatus = {
    deploymentId: input.deploymentId,
    phase: 'starting',
    repository: input.repository,
    change: input.change,
    hosts,
    audit: [],
    waves: rollout.waves.map((w) => ({ name: w.name, hosts: w.hosts, state: 'pending' })),
  };
  const specOf = new Map<string, HostSpec>(input.hosts.map((h) => [h.name, h]));
  const queue: Array<{ request: RollbackRequest; done?: (o: RollbackOutcome) => void }> = [];
  let busy = false;

  // Every host and phase transition is numbered here, in the order the workflow makes (or, for a
  // wave's hosts, receives) it; readers page through the ring with progressSince(cursor). Memory only:
  // the history does not grow, and a replay rebuilds the same numbers.
  const transitions = new TransitionRing();
  const hostMoved = (h: HostStatus, from: HostState): void => {
    if (h.state === from) return;
    status.progressCursor = transitions.record((seq) => hostTransition(h, from, seq, new Date().toISOString())).seq;
  };
  /** Moves a host to `to` (after any detail fields were set, so the transition carries them). */
  const moveHost = (h: HostStatus, to: HostState): void => {
    const from = h.state;
    h.state = to;
    hostMoved(h, from);
  };
  const setPhase = (phase: Phase): void => {
    const from = status.phase;
    status.phase = phase;
    if (from !== phase) {
      status.progressCursor = transitions.record((seq) => ({ seq, type: 'phase' as const, from, to: phase, ...(status.outcome ? { outcome: status.outcome } : {}), at: new Date().toISOString() })).seq;
    }
    if (input.searchAttributes) upsertSearchAttributes({ NixfleetPhase: [phase] });
    log.info('phase', { phase });
  };
  // Every entry also goes to the durable audit log (the worker's store), in order; the workflow does
  // not close before they are all written.
  const auditWrites: Array<Promise<void>> = [];
  const repositoryName = `${input.repository.owner}/${input.repository.name}`;
  // Bounded before it is written (an actor or an outcome from outside cannot make the store refuse
  // it); an entry the store refuses all the same fails once, is reported, and never holds the close.
  const audit = (entry: Omit<RawAuditEntry, 'at'>): void => {
    const full: AuditEntry = storableAuditEntry({ at: new Date().toISOString(), ...entry });
    status.audit.push(full);
    const seq = status.audit.length;
    auditWrites.push(
      proxyActivities<DeployActivities>({ ...auditStep, activityId: `audit-${seq}`, summary: `audit: ${full.actor.slice(0, 60)} ${full.action}` })
        .recordAudit({
          deploymentId: input.deploymentId,
          seq,
          repository: repositoryName,
          entry: full,
        })
        .catch((err: unknown) => {
          const f = failureOf(err);
          (status.auditFailures ??= []).push({ seq, action: full.action, type: f.type, error: f.message.slice(0, 1000) });
          log.error('audit entry not recorded', { seq, action: full.action, type: f.type, error: f.message });
        }),
    );
  };
  // Every close of the deployment goes through flushAudit: there, the GC roots that pinned each
  // recorded host's way back are removed (best effort: a host unreachable now keeps them).
  // patched: histories recorded before the roots existed replay without these activities.
  const releaseRoots = async (): Promise<void> => {
    const recorded = hosts.filter((h) => h.before !== undefined);
    await Promise.all(
      recorded.map((h) =>
        step(readStep, `${h.name}/release`, `remove the deployment's GC roots on ${h.name}`)
          .releaseHost({ deploymentId: input.deploymentId, deploymentRunId: workflowInfo().runId, host: specOf.get(h.name) as HostSpec })
          .catch((err: unknown) => log.warn('GC roots not removed', { host: h.name, error: failureOf(err).message })),
      ),
    );
  };
  const flushAudit = async (): Promise<void> => {
    if (patched('release-gc-roots')) await CancellationScope.nonCancellable(releaseRoots);
    await CancellationScope.nonCancellable(() => Promise.all(auditWrites));
  };

  // Reverse deployment order: last wave first, and within a wave the last host first.
  const deployOrder = rollout.waves.flatMap((w) => w.hosts);
  const rollbackCandidates = (): HostStatus[] =>
    [...hosts]
      .sort((a, b) => deployOrder.indexOf(a.name) - deployOrder.indexOf(b.name))
      .filter((h) => h.before !== undefined)
      .filter(
        (h) =>
          h.state === 'switched' ||
          h.state === 'rollback-failed' ||
          (h.state === 'failed' && (h.profileMoved === true || h.uncertain !== undefined)),
      )
      .reverse();
  const revertNeeded = (): boolean => status.mergeSha !== undefined && (status.revert === undefined || status.revert.kind === 'failed');
  const allowedActions = (): ManualAction[] => {
    if (status.phase !== 'awaiting-operator') return [];
    const actions: ManualAction[] = [];
    if (revertNeeded()) actions.push('revert');
    if (revertNeeded() || rollbackCandidates().length > 0) actions.push('revert-and-rollback');
    actions.push('dismiss');
    return actions;
  };
  const preview = (): RollbackPreview => ({
    hosts: rollbackCandidates().map((h) => ({ name: h.name, from: h.after, to: h.before as Generation, state: h.state })),
    revert: { needed: revertNeeded(), mergeSha: status.mergeSha, alreadyDone: status.revert?.kind === 'failed' ? undefined : status.revert },
    allowed: allowedActions(),
  });
  const rejectReason = (req: RollbackRequest): string | undefined => {
    if (typeof req !== 'object' || req === null) return 'request must be an object';
    if (typeof req.requestedBy !== 'string' || req.requestedBy.trim() === '') return 'requestedBy: required (who asked)';
    if (req.requestedBy.length > AUDIT_LIMITS.actor) return `requestedBy: at most ${AUDIT_LIMITS.actor} characters (got ${req.requestedBy.length})`;
    if (!['revert', 'revert-and-rollback', 'dismiss'].includes(req.action)) return `action: must be revert, revert-and-rollback or dismiss (got ${clip(JSON.stringify(req.action) ?? 'nothing', 200)})`;
    if (req.revertMode !== undefined && req.revertMode !== 'commit' && req.revertMode !== 'pull-request') return 'revertMode: must be commit or pull-request';
    if (req.reason !== undefined && (typeof req.reason !== 'string' || req.reason.length > 500)) return 'reason: a text of at most 500 characters';
    if (busy) return 'a manual rollback is already in progress';
    if (!allowedActions().includes(req.action)) {
      return status.phase === 'awaiting-operator'
        ? `action ${req.action} no longer applies (allowed now: ${allowedActions().join(', ')})`
        : `the deployment is ${status.phase}; manual rollback applies only to a failed deployment awaiting an operator`;
    }
    return undefined;
  };

  setHandler(statusQuery, () => status);
  setHandler(progressSinceQuery, (since) => transitions.page(since, status));
  setHandler(hostUpdateSignal, (u) => {
    const h = byName.get(u.name);
    if (!h) return;
    const from = h.state;
    Object.assign(h, u);
    hostMoved(h, from);
  });
  setHandler(rollbackPreviewQuery, preview);
  setHandler(rollbackSignal, (request) => {
    queue.push({ request });
  });
  setHandler(
    rollbackUpdate,
    async (request) =>
      new Promise<RollbackOutcome>((resolve) => {
        queue.push({ request, done: resolve });
      }),
    {
      validator: (request) => {
        const reason = rejectReason(request);
        if (reason) throw new Error(reason);
      },
    },
  );

  // --- the revert and the rollback, shared by the automatic and the manual path -------------------
  const revert = async (mode: 'commit' | 'pull-request', actor: string, reason: string): Promise<RevertOutcome | undefined> => {
    if (status.mergeSha === undefined) return undefined;
    try {
      status.revert = await step(githubStep, 'github/revert', `revert ${status.mergeSha.slice(0, 12)} on ${input.repository.branch} (${mode})`).revertMerge({
        deploymentId: input.deploymentId,
        repository: input.repository,
        mergeSha: status.mergeSha,
        pullRequest: status.change.kind === 'pull-request' ? status.change.number : status.change.pullRequest,
        mode,
        reason,
        requestedBy: actor,
        requestedAt: new Date().toISOString(),
      });
    } catch (err) {
      const f = failureOf(err);
      status.revert = { kind: 'failed', error: f.message, conflict: f.type === 'RevertConflict' };
    }
    return status.revert;
  };
  const rollbackHosts = async (only?: string[]): Promise<{ rolledBack: string[]; failed: string[] }> => {
    const rolledBack: string[] = [];
    const failed: string[] = [];
    const candidates = rollbackCandidates().filter((h) => only === undefined || only.includes(h.name));
    // Wave by wave in reverse order; inside a wave as many at once as the wave deployed.
    for (const wave of [...rollout.waves].reverse()) {
      const inWave = candidates.filter((h) => wave.hosts.includes(h.name));
      await pool(inWave, wave.maxParallel, async (h) => {
        const spec = specOf.get(h.name) as HostSpec;
        const to = h.before as Generation;
        moveHost(h, 'rolling-back');
        try {
          await step(hostStep, `${h.name}/rollback`, `roll back ${h.name} to generation ${to.number}`).rollbackHost({ deploymentId: input.deploymentId, host: spec, to });
          h.uncertain = undefined;
          moveHost(h, 'rolled-back');
          rolledBack.push(h.name);
        } catch (err) {
          h.error = `rollback to generation ${to.number} failed: ${failureOf(err).message}`;
          moveHost(h, 'rollback-failed');
          failed.push(h.name);
        }
      });
    }
    return { rolledBack, failed };
  };
  const revertLabel = (r: RevertOutcome | undefined): string | undefined =>
    r === undefined ? undefined : r.kind === 'commit' ? r.commitSha : r.kind === 'pull-request' ? r.url : undefined;
  const revertSummary = (r: RevertOutcome | undefined): string =>
    r === undefined
      ? 'no revert'
      : r.kind === 'commit'
        ? r.alreadyReverted
          ? `already reverted (${r.commitSha.slice(0, 12)})`
          : `reverted in ${r.commitSha.slice(0, 12)}`
        : r.kind === 'pull-request'
          ? `revert pull request #${r.number}${r.fellBackFromProtectedBranch ? ' (branch protected: fell back to a pull request)' : ''}`
          : `revert failed: ${r.error}`;

  const refuse = async (why: string): Promise<DeploymentStatus> => {
    status.failure = why;
    for (const h of hosts) if (h.state === 'pending') moveHost(h, 'not-attempted');
    status.outcome = 'refused';
    audit({ actor: 'nixfleet (automatic)', action: 'deploy', hosts: [], outcome: `refused: ${why}` });
    setPhase('closed');
    await flushAudit();
    deploymentSink.closed('refused');
    return status;
  };

  if (input.searchAttributes) {
    upsertSearchAttributes({ NixfleetRepository: [`${input.repository.owner}/${input.repository.name}`] });
  }
  audit({ actor: input.requestedBy, action: 'deploy', hosts: input.hosts.map((h) => h.name), outcome: 'requested' });

  // --- one deployment per fleet: the server refuses a second holder of the lock ---------------------
  // Escaped ids since issue 12 (bug 8); deployments started before keep the lock id they took.
  const lockId = patched('escaped-fleet-lock-id') ? fleetLockId(input.repository) : legacyFleetLockId(input.repository);
  try {
    await startChild(fleetLockWorkflow, {
      workflowId: lockId,
      args: [{ deploymentId: input.deploymentId }],
      parentClosePolicy: ParentClosePolicy.TERMINATE,
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      return refuse(`another deployment holds ${input.repository.owner}/${input.repository.name}@${input.repository.branch} (lock ${lockId}); wait for it or dismiss it`);
    }
    throw err;
  }

  // --- merge ------------------------------------------------------------------------------------
  setPhase('merging');
  let failure: { host?: string; message: string } | undefined;
  let cancelled: unknown;
  let how: 'merged-now' | 'already-merged' | 'commit';
  try {
    const resolved = await step(githubStep, 'github/merge', 'merge the flake.lock update').resolveChange({
      deploymentId: input.deploymentId,
      repository: input.repository,
      change: input.change,
    });
    status.mergeSha = resolved.mergeSha;
    how = resolved.how;
    if (resolved.how !== 'commit') {
      audit({ actor: input.requestedBy, action: 'merge', reverted: undefined, hosts: [], outcome: `${resolved.how} as ${resolved.mergeSha}` });
    }
  } catch (err) {
    if (isCancellation(err)) throw err;
    // Nothing was deployed: a merge that fails leaves nothing to undo.
    status.failure = `merge failed: ${failureOf(err).message}`;
    for (const h of hosts) if (h.state === 'pending') moveHost(h, 'not-attempted');
    status.outcome = 'failed-not-rolled-back';
    setPhase('closed');
    await flushAudit();
    return status;
  }
  const mergeSha = status.mergeSha as string;

  // --- quarantine: a commit reverted once is not deployed again without an override -----------------
  if (how !== 'merged-now') {
    const q = await step(githubStep, 'github/quarantine', `is ${mergeSha.slice(0, 12)} quarantined?`).quarantineStatus({ repository: input.repository, mergeSha });
    if (q.quarantined && !rollout.allowQuarantined) {
      // Nothing of ours to revert: do not let the compensation revert it a second time.
      status.mergeSha = undefined;
      return refuse(`quarantined: ${q.why ?? 'reverted before'}; deploy it again only with an explicit override (rollout.allowQuarantined)`);
    }
  }

  const flakeRef = input.flakeRefTemplate
    .replace(/\{owner\}/g, input.repository.owner)
    .replace(/\{repo\}/g, input.repository.name)
    .replace(/\{sha\}/g, mergeSha);
  const active = input.hosts.filter((h) => !held.has(h.name));
  let targets: Record<string, string> = {};
  let failures = 0;
  try {
    // --- build first: an evaluation or build error touches no host ---------------------------------
    if (rollout.buildFirst && active.length > 0) {
      setPhase('building');
      const built = await executeChild(buildWorkflow, {
        workflowId: `${input.deploymentId}-build`,
        args: [{ deploymentId: input.deploymentId, hosts: active, flakeRef, maxParallel: Math.max(1, ...rollout.waves.map((w) => w.maxParallel)) }],
      });
      targets = built.targets;
      const first = built.failures[0];
      if (first) {
        for (const f of built.failures) {
          const h = byName.get(f.host);
          if (h) h.error = `build failed: ${f.error}`;
        }
        failure = { host: first.host, message: `the build failed on ${built.failures.map((f) => f.host).join(', ')}; no host was switched: ${first.error}` };
      }
      for (const h of hosts) if (h.state === 'pending' && targets[h.name]) h.target = targets[h.name];
    }

    // --- waves: canary first, then the rest; halt when failures exceed the budget ------------------
    for (const [i, wave] of rollout.waves.entries()) {
      if (failure) break;
      const waveStatus = status.waves?.[i];
      const waveHosts = wave.hosts.filter((n) => !held.has(n)).map((n) => specOf.get(n) as HostSpec);
      if (waveStatus) waveStatus.state = 'running';
      setPhase('deploying');
      // A large wave runs as several children in turn, each within Temporal's history limits.
      const perChild = Math.max(1, rollout.hostsPerChild ?? DEFAULT_HOSTS_PER_CHILD);
      const result = { failures: 0, halted: false };
      for (let k = 0; k * perChild < waveHosts.length && !result.halted; k++) {
        const part = await executeChild(waveWorkflow, {
          workflowId: k === 0 ? `${input.deploymentId}-wave-${i + 1}` : `${input.deploymentId}-wave-${i + 1}-${k + 1}`,
          args: [
            {
              deploymentId: input.deploymentId,
              parentWorkflowId: workflowInfo().workflowId,
              wave,
              hosts: waveHosts.slice(k * perChild, (k + 1) * perChild),
              flakeRef,
              targets,
              budgetLeft: rollout.failureBudget - failures - result.failures,
              failedUnits: rollout.failedUnits,
              healthChecks: rollout.healthChecks,
              healthGraceSeconds: rollout.healthGraceSeconds,
              confirmTimeoutSeconds: rollout.confirmTimeoutSeconds,
            },
          ],
        });
        result.failures += part.failures;
        result.halted = part.halted;
      }
      failures += result.failures;
      const failedHere = waveHosts.filter((h) => byName.get(h.name)?.state === 'failed').map((h) => h.name);
      if (result.halted) {
        if (waveStatus) waveStatus.state = 'halted';
        const first = failedHere[0];
        failure = {
          host: first,
          message: rollout.failureBudget > 0 ? `${failures} hosts failed, over the failure budget of ${rollout.failureBudget}: ${failedHere.join(', ')}` : (byName.get(first ?? '')?.error ?? 'failed'),
        };
        break;
      }
      if (waveStatus) waveStatus.state = 'done';
      // Failures within the budget: those hosts go back to where they were, and the rollout goes on.
      if (failedHere.length > 0 && input.onFailure.rollbackHosts) {
        await CancellationScope.nonCancellable(async () => {
          const r = await rollbackHosts(failedHere);
          audit({ actor: 'nixfleet (automatic)', action: 'auto-compensate', hosts: r.rolledBack, outcome: `within the failure budget (${failures}/${rollout.failureBudget}); rolled back: ${r.rolledBack.join(', ') || 'none'}${r.failed.length ? `; rollback failed: ${r.failed.join(', ')}` : ''}` });
        });
      }
      if (i < rollout.waves.length - 1 && wave.bakeSeconds > 0) {
        if (waveStatus) waveStatus.state = 'baking';
        setPhase('baking');
        await sleep(wave.bakeSeconds * 1000);
        if (waveStatus) waveStatus.state = 'done';
      }
    }
  } catch (err) {
    if (!isCancellation(err)) throw err;
    cancelled = err;
    const current = hosts.find((h) => h.state === 'switching');
    if (current) {
      current.uncertain = 'deployment cancelled while this host was being switched';
      moveHost(current, 'failed');
    }
    failure = { host: current?.name, message: 'deployment cancelled' };
  }

  if (failure === undefined) {
    status.outcome = failures > 0 ? 'succeeded-with-failures' : 'succeeded';
    setPhase('succeeded');
    await flushAudit();
    return status;
  }
  for (const w of status.waves ?? []) if (w.state === 'pending') w.state = 'not-started';
  for (const h of hosts) if (h.state === 'pending') moveHost(h, 'not-attempted');
  status.failedHost = failure.host;
  status.failure = failure.host ? `switch failed on ${failure.host}: ${failure.message}` : failure.message;
  if (failure.message.startsWith('the build failed')) status.failure = failure.message;

  // --- automatic compensation, immune to cancellation ---------------------------------------------
  setPhase('compensating');
  await CancellationScope.nonCancellable(async () => {
    const reason = status.failure as string;
    let reverted: RevertOutcome | undefined;
    if (input.onFailure.revert !== 'off') reverted = await revert(input.onFailure.revert, 'nixfleet (automatic)', reason);
    let result: { rolledBack: string[]; failed: string[] } = { rolledBack: [], failed: [] };
    if (input.onFailure.rollbackHosts) result = await rollbackHosts();
    if (input.onFailure.revert !== 'off' || input.onFailure.rollbackHosts) {
      audit({
        actor: 'nixfleet (automatic)',
        action: 'auto-compensate',
        reverted: revertLabel(reverted),
        hosts: result.rolledBack,
        outcome: `halted: ${reason}; ${revertSummary(reverted)}; rolled back: ${result.rolledBack.join(', ') || 'none'}${result.failed.length ? `; rollback failed: ${result.failed.join(', ')}` : ''}`,
      });
    }
  });
  const computeOutcome = (): DeploymentOutcome => failedOutcome({ hosts, rollbackCandidates: rollbackCandidates().length, revert: status.revert });
  status.outcome = computeOutcome();
  if (cancelled) {
    setPhase('closed');
    await flushAudit();
    throw cancelled;
  }

  // --- open for the operator ----------------------------------------------------------------------
  setPhase('awaiting-operator');
  const deadline = Date.now() + input.manualWindowSeconds * 1000;
  try {
    while (status.phase === 'awaiting-operator') {
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      if (!(await condition(() => queue.length > 0, remaining))) break;
      const item = queue.shift() as { request: RollbackRequest; done?: (o: RollbackOutcome) => void };
      const { request } = item;
      const reason = rejectReason(request);
      if (reason) {
        audit({ actor: (request as Partial<RollbackRequest> | null)?.requestedBy, action: (request as Partial<RollbackRequest> | null)?.action, hosts: [], outcome: `rejected: ${reason}` });
        item.done?.({ action: request.action, accepted: false, summary: reason, status });
        continue;
      }
      let summary: string;
      if (request.action === 'dismiss') {
        audit({ actor: request.requestedBy, action: 'dismiss', hosts: [], outcome: 'dismissed' });
        if (status.outcome === 'failed-not-rolled-back') status.outcome = 'failed-dismissed';
        summary = 'dismissed';
        setPhase('closed');
      } else {
        busy = true;
        setPhase('rolling-back');
        const mode = request.revertMode ?? (input.onFailure.revert === 'off' ? 'commit' : input.onFailure.revert);
        summary = await CancellationScope.nonCancellable(async () => {
          const why = request.reason ?? `manual ${request.action} requested by ${request.requestedBy} after: ${status.failure}`;
          const r = revertNeeded() ? await revert(mode, request.requestedBy, why) : status.revert;
          let result: { rolledBack: string[]; failed: string[] } = { rolledBack: [], failed: [] };
          if (request.action === 'revert-and-rollback') result = await rollbackHosts();
          const text = `${revertSummary(r)}${request.action === 'revert-and-rollback' ? `; rolled back: ${result.rolledBack.join(', ') || 'none'}${result.failed.length ? `; rollback failed: ${result.failed.join(', ')}` : ''}` : ''}`;
          audit({ actor: request.requestedBy, action: request.action, reverted: revertLabel(r), hosts: result.rolledBack, outcome: text });
          return text;
        });
        busy = false;
        status.outcome = computeOutcome();
        setPhase('awaiting-operator');
        if (allowedActions().length === 1) setPhase('closed');
      }
      item.done?.({ action: request.action, accepted: true, summary, status });
    }
  } finally {
    // Answer any update still waiting so no caller hangs on a closed deployment.
    for (const item of queue.splice(0)) {
      item.done?.({ action: item.request?.action, accepted: false, summary: 'the deployment closed before this request ran', status });
    }
  }
  setPhase('closed');
  await flushAudit();
  log.info('deployment closed', { workflowId: workflowInfo().workflowId, outcome: status.outcome });
  deploymentSink.closed(status.outcome ?? 'unknown');
  return status;
}
