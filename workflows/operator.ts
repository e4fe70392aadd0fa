import { CancellationScope, condition, isCancellation, patched, setHandler } from '@temporalio/workflow';
import type { RollbackRequest } from '../src/domain/deployment';
import { allowedActions, limitPreview, outcomeOf, preview, previewLimitOf, rejectReason, revertAvailable, revertLabel, revertSummary, rollbackSummary } from '../src/domain/saga';
import { hostUpdateSignal } from './common';
import { revertMerge, rollbackHosts, type RollbackResult } from './compensation';
import type { DeploymentRecord } from './deployment-state';
import { progressSinceQuery, rollbackPreviewQuery, rollbackSignal, rollbackUpdate, statusQuery, type RollbackOutcome } from './messages';

/**
 * A manual request waiting its turn. `job`: an operator control that runs in the manual window (a
 * retry, workflows/controls.ts): it is run in turn instead of the rollback request, and told when the
 * deployment closes before it ran.
 */
export type Queued = { request: RollbackRequest; done?: (o: RollbackOutcome) => void; job?: undefined } | { job: { run: () => Promise<void>; closed: () => void } };

/**
 * The deployment's queries, the waves' host updates, and the operator's requests (the signal and the
 * update both queue; the update's validator refuses what `rejectReason` refuses). Returns the queue.
 */
export function registerHandlers(d: DeploymentRecord): Queued[] {
  const queue: Queued[] = [];
  setHandler(statusQuery, () => d.status);
  setHandler(progressSinceQuery, (since) => d.transitions.page(since, d.status));
  // Deployments started before their waves reported in results (workflows/wave-report.ts) only: in
  // the others nothing takes a hostUpdate signal, so nothing from outside rewrites a host's record.
  if (!d.bounded) {
    setHandler(hostUpdateSignal, (u) => {
      const h = d.host(u.name);
      if (!h) return;
      const from = h.state;
      Object.assign(h, u);
      d.hostMoved(h, from);
    });
  }
  setHandler(rollbackPreviewQuery, (opts) => limitPreview(preview(d.facts()), previewLimitOf(opts)));
  setHandler(rollbackSignal, (request) => {
    queue.push({ request });
  });
  setHandler(rollbackUpdate, async (request) => new Promise<RollbackOutcome>((resolve) => queue.push({ request, done: resolve })), {
    validator: (request) => {
      const reason = rejectReason(request, d.facts());
      if (reason) throw new Error(reason);
    },
  });
  return queue;
}

/**
 * The manual window: requests run one at a time until the window ends, an operator dismisses, or
 * nothing is left but dismissing. Cancelling the deployment here closes it as it is, with an entry in
 * the audit trail.
 */
export async function awaitOperator(d: DeploymentRecord, queue: Queued[]): Promise<void> {
  const { status, input } = d;
  d.setPhase('awaiting-operator');
  const deadline = Date.now() + input.manualWindowSeconds * 1000;
  try {
    while (status.phase === 'awaiting-operator') {
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      if (!(await condition(() => queue.length > 0, remaining))) break;
      const item = queue.shift() as Queued;
      if (item.job !== undefined) {
        await item.job.run();
        continue;
      }
      const { request } = item;
      const reason = rejectReason(request, d.facts());
      if (reason) {
        const r = request as Partial<RollbackRequest> | null;
        d.auditRefusal({ actor: r?.requestedBy, action: r?.action, hosts: [], outcome: `rejected: ${reason}` });
        item.done?.({ action: request?.action, accepted: false, summary: reason, status });
        continue;
      }
      const summary = request.action === 'dismiss' ? dismiss(d, request) : await manualRollback(d, request);
      item.done?.({ action: request.action, accepted: true, summary, status });
    }
  } catch (err) {
    if (!isCancellation(err) || !patched('audit-cancel-in-window')) throw err;
    await CancellationScope.nonCancellable(async () => {
      d.audit({ actor: 'nixfleet (automatic)', action: 'dismiss', hosts: [], outcome: `cancelled while awaiting an operator: closed as it is (${status.outcome ?? 'no outcome'})` });
      d.setPhase('closed');
      await d.flush();
    });
    throw err;
  } finally {
    // Answer any update still waiting so no caller hangs on a closed deployment.
    for (const item of queue.splice(0)) {
      if (item.job !== undefined) item.job.closed();
      else item.done?.({ action: item.request?.action, accepted: false, summary: 'the deployment closed before this request ran', status });
    }
  }
}

function dismiss(d: DeploymentRecord, request: RollbackRequest): string {
  d.audit({ actor: request.requestedBy, action: 'dismiss', hosts: [], outcome: 'dismissed' });
  if (d.status.outcome === 'failed-not-rolled-back') d.status.outcome = 'failed-dismissed';
  d.setPhase('closed');
  return 'dismissed';
}

/**
 * `revert` or `revert-and-rollback` as the operator asked: the revert when the merge is not reverted
 * yet (a commit deploy's commit too: the operator asked), the hosts when asked. The audit entry says
 * what this operator did: a revert someone else made before is "already reverted by …", not theirs.
 */
async function manualRollback(d: DeploymentRecord, request: RollbackRequest): Promise<string> {
  const { status, input } = d;
  d.busy = true;
  d.setPhase('rolling-back');
  const mode = request.revertMode ?? (input.onFailure.revert === 'off' ? 'commit' : input.onFailure.revert);
  const summary = await CancellationScope.nonCancellable(async () => {
    const why = request.reason ?? `manual ${request.action} requested by ${request.requestedBy} after: ${status.failure}`;
    const revertNow = revertAvailable(d.facts());
    const r = revertNow ? await revertMerge(d, mode, request.requestedBy, why) : status.revert;
    const result: RollbackResult = request.action === 'revert-and-rollback' ? await rollbackHosts(d) : { rolledBack: [], failed: [] };
    const earlier = revertNow || r === undefined ? undefined : (d.revertedBy ?? 'an earlier request');
    const text = `${revertSummary(r, earlier)}${request.action === 'revert-and-rollback' ? `; ${rollbackSummary(result)}` : ''}`;
    d.audit({ actor: request.requestedBy, action: request.action, reverted: revertNow ? revertLabel(r) : undefined, hosts: result.rolledBack, outcome: text });
    return text;
  });
  d.busy = false;
  status.outcome = outcomeOf(d.facts());
  d.setPhase('awaiting-operator');
  if (allowedActions(d.facts()).length === 1) d.setPhase('closed');
  return summary;
}
