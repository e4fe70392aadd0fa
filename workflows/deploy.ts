import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  log,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { ActivityOptions } from '@temporalio/workflow';
import type { DeployActivities, SwitchFailedDetails } from '../src/domain/activities';
import type {
  AuditEntry,
  DeployInput,
  DeploymentOutcome,
  DeploymentStatus,
  Generation,
  HostSpec,
  HostStatus,
  ManualAction,
  Phase,
  RevertOutcome,
  RollbackPreview,
  RollbackRequest,
} from '../src/domain/deployment';
import { rollbackPreviewQuery, rollbackSignal, rollbackUpdate, statusQuery } from './messages';
import type { RollbackOutcome } from './messages';

const NON_RETRYABLE = ['SwitchFailed', 'HostKeyMismatch', 'VerifyFailed', 'RevertConflict', 'GitHubPermanent', 'InvalidInput'];

/** Host steps: retried when the connection drops (the next attempt re-inspects the host first). */
const hostStep: ActivityOptions = {
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '20 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 5, nonRetryableErrorTypes: NON_RETRYABLE },
};
/** GitHub calls: rate limits come back with the delay GitHub asked for (nextRetryDelay). */
const githubStep: ActivityOptions = {
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 10, nonRetryableErrorTypes: NON_RETRYABLE },
};

/** Audit writes retry until the store takes them: an entry is never dropped. */
const auditStep: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
};

let activitySeq = 0;
function step(options: ActivityOptions, id: string, summary: string): DeployActivities {
  activitySeq += 1;
  return proxyActivities<DeployActivities>({ ...options, activityId: `${activitySeq}-${id}`, summary });
}

function failureOf(err: unknown): { type: string; message: string; details?: unknown } {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure) {
    return { type: cause.type ?? 'Error', message: cause.message, details: cause.details?.[0] };
  }
  if (cause instanceof Error) return { type: cause.name, message: cause.message };
  return { type: 'Error', message: String(cause) };
}

/**
 * One deployment of a merged flake.lock update: merge (guarded by the head sha), then per host in order
 * record → switch → verify. The first failure halts the sequence; the compensations (GitHub revert,
 * rollback of every host that changed to its recorded generation, in reverse order) run in a scope that
 * cancellation cannot interrupt. A failed deployment then stays open for a manual rollback.
 */
export async function deployWorkflow(input: DeployInput): Promise<DeploymentStatus> {
  activitySeq = 0;
  const hosts: HostStatus[] = input.hosts.map((h) => ({ name: h.name, kind: h.kind, state: 'pending' }));
  const status: DeploymentStatus = {
    deploymentId: input.deploymentId,
    phase: 'starting',
    repository: input.repository,
    change: input.change,
    hosts,
    audit: [],
  };
  const specOf = new Map<string, HostSpec>(input.hosts.map((h) => [h.name, h]));
  const queue: Array<{ request: RollbackRequest; done?: (o: RollbackOutcome) => void }> = [];
  let busy = false;

  const setPhase = (phase: Phase): void => {
    status.phase = phase;
    if (input.searchAttributes) upsertSearchAttributes({ NixfleetPhase: [phase] });
    log.info('phase', { phase });
  };
  // Every entry also goes to the durable audit log (the worker's store), in order; the workflow does
  // not close before they are all written.
  const auditWrites: Array<Promise<void>> = [];
  const repositoryName = `${input.repository.owner}/${input.repository.name}`;
  const audit = (entry: Omit<AuditEntry, 'at'>): void => {
    const full: AuditEntry = { at: new Date().toISOString(), ...entry };
    status.audit.push(full);
    const seq = status.audit.length;
    auditWrites.push(
      proxyActivities<DeployActivities>({ ...auditStep, activityId: `audit-${seq}`, summary: `audit: ${entry.actor} ${entry.action}` }).recordAudit({
        deploymentId: input.deploymentId,
        seq,
        repository: repositoryName,
        entry: full,
      }),
    );
  };
  const flushAudit = async (): Promise<void> => {
    await CancellationScope.nonCancellable(() => Promise.all(auditWrites));
  };

  const rollbackCandidates = (): HostStatus[] =>
    hosts
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
    if (!['revert', 'revert-and-rollback', 'dismiss'].includes(req.action)) return `action: must be revert, revert-and-rollback or dismiss (got ${JSON.stringify(req.action)})`;
    if (req.revertMode !== undefined && req.revertMode !== 'commit' && req.revertMode !== 'pull-request') return 'revertMode: must be commit or pull-request';
    if (busy) return 'a manual rollback is already in progress';
    if (!allowedActions().includes(req.action)) {
      return status.phase === 'awaiting-operator'
        ? `action ${req.action} no longer applies (allowed now: ${allowedActions().join(', ')})`
        : `the deployment is ${status.phase}; manual rollback applies only to a failed deployment awaiting an operator`;
    }
    return undefined;
  };

  setHandler(statusQuery, () => status);
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
  const rollbackHosts = async (): Promise<{ rolledBack: string[]; failed: string[] }> => {
    const rolledBack: string[] = [];
    const failed: string[] = [];
    for (const h of rollbackCandidates()) {
      const spec = specOf.get(h.name) as HostSpec;
      const to = h.before as Generation;
      h.state = 'rolling-back';
      try {
        await step(hostStep, `${h.name}/rollback`, `roll back ${h.name} to generation ${to.number}`).rollbackHost({
          deploymentId: input.deploymentId,
          host: spec,
          to,
        });
        h.state = 'rolled-back';
        h.uncertain = undefined;
        rolledBack.push(h.name);
      } catch (err) {
        h.state = 'rollback-failed';
        h.error = `rollback to generation ${to.number} failed: ${failureOf(err).message}`;
        failed.push(h.name);
      }
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

  // --- merge ------------------------------------------------------------------------------------
  if (input.searchAttributes) {
    upsertSearchAttributes({ NixfleetRepository: [`${input.repository.owner}/${input.repository.name}`] });
  }
  audit({ actor: input.requestedBy, action: 'deploy', hosts: input.hosts.map((h) => h.name), outcome: 'requested' });
  setPhase('merging');
  let failure: { host?: string; message: string } | undefined;
  let cancelled: unknown;
  try {
    const resolved = await step(githubStep, 'github/merge', 'merge the flake.lock update').resolveChange({
      deploymentId: input.deploymentId,
      repository: input.repository,
      change: input.change,
    });
    status.mergeSha = resolved.mergeSha;
    if (resolved.how !== 'commit') {
      audit({ actor: input.requestedBy, action: 'merge', reverted: undefined, hosts: [], outcome: `${resolved.how} as ${resolved.mergeSha}` });
    }
  } catch (err) {
    if (isCancellation(err)) throw err;
    // Nothing was deployed: a merge that fails leaves nothing to undo.
    status.failure = `merge failed: ${failureOf(err).message}`;
    for (const h of hosts) h.state = 'not-attempted';
    status.outcome = 'failed-not-rolled-back';
    setPhase('closed');
    await flushAudit();
    return status;
  }

  // --- deploy, host by host -----------------------------------------------------------------------
  setPhase('deploying');
  const mergeSha = status.mergeSha as string;
  const flakeRef = input.flakeRefTemplate
    .replace(/\{owner\}/g, input.repository.owner)
    .replace(/\{repo\}/g, input.repository.name)
    .replace(/\{sha\}/g, mergeSha);
  try {
    for (const h of hosts) {
      const spec = specOf.get(h.name) as HostSpec;
      const ref = `${flakeRef}#${spec.attr}`;
      h.state = 'switching';
      try {
        h.before = await step(hostStep, `${h.name}/record`, `record ${h.name}'s generation`).recordGeneration({ deploymentId: input.deploymentId, host: spec });
        h.after = await step(hostStep, `${h.name}/switch`, `switch ${h.name} to ${mergeSha.slice(0, 12)}`).switchHost({
          deploymentId: input.deploymentId,
          host: spec,
          flakeRef: ref,
          before: h.before,
        });
        await step(hostStep, `${h.name}/verify`, `verify ${h.name} runs generation ${h.after.number}`).verifyHost({
          deploymentId: input.deploymentId,
          host: spec,
          expected: h.after,
        });
        h.state = 'switched';
      } catch (err) {
        if (isCancellation(err)) throw err;
        const f = failureOf(err);
        h.state = 'failed';
        h.error = f.message;
        if (f.type === 'SwitchFailed') {
          const d = f.details as SwitchFailedDetails | undefined;
          h.profileMoved = d?.profileMoved ?? false;
          if (d?.after) h.after = d.after;
        } else if (f.type === 'ConnectionLost' || f.type === 'HostUnreachable' || f.type === 'VerifyFailed') {
          h.uncertain = `${f.type}: ${f.message}`;
        }
        failure = { host: h.name, message: f.message };
        break;
      }
    }
  } catch (err) {
    if (!isCancellation(err)) throw err;
    cancelled = err;
    const current = hosts.find((h) => h.state === 'switching');
    if (current) {
      current.state = 'failed';
      current.uncertain = 'deployment cancelled while this host was being switched';
    }
    failure = { host: current?.name, message: 'deployment cancelled' };
  }

  if (failure === undefined) {
    status.outcome = 'succeeded';
    setPhase('succeeded');
    await flushAudit();
    return status;
  }
  for (const h of hosts) if (h.state === 'pending') h.state = 'not-attempted';
  status.failedHost = failure.host;
  status.failure = failure.host ? `switch failed on ${failure.host}: ${failure.message}` : failure.message;

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
        outcome: `${revertSummary(reverted)}; rolled back: ${result.rolledBack.join(', ') || 'none'}${result.failed.length ? `; rollback failed: ${result.failed.join(', ')}` : ''}`,
      });
    }
  });
  const computeOutcome = (): DeploymentOutcome => {
    if (hosts.some((h) => h.state === 'rollback-failed') || rollbackCandidates().length > 0) {
      return hosts.some((h) => h.state === 'rolled-back' || h.state === 'rollback-failed') ? 'failed-rollback-incomplete' : 'failed-not-rolled-back';
    }
    return 'failed-rolled-back';
  };
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
        audit({ actor: String(request?.requestedBy ?? 'unknown'), action: request?.action ?? 'dismiss', hosts: [], outcome: `rejected: ${reason}` });
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
  return status;
}
