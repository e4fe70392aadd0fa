import { CancellationScope, ParentClosePolicy, condition, defineQuery, defineSignal, defineUpdate, log, patched, proxyActivities, setHandler, startChild, workflowInfo } from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { DeployActivities } from '../src/domain/activities';
import { storableAuditEntry, type RawAuditEntry } from '../src/domain/audit';
import type { ClosureDiffActivities } from '../src/domain/closure-diff';
import type { AuditEntry, Generation, HostSpec } from '../src/domain/deployment';
import { revertLabel } from '../src/domain/saga';
import type { SmokeActivities } from '../src/domain/smoke';
import {
  confirmRejectReason,
  undoPlan,
  undoSummary,
  type DeploymentResults,
  type HostNow,
  type MergeState,
  type UndoConfirmation,
  type UndoInput,
  type UndoPlan,
  type UndoPreview,
  type UndoStatus,
} from '../src/domain/undo';
import { recheckConfirmedPlan } from '../src/domain/undo-recheck';
import { auditRefusal, auditStep, failureOf, githubStep, hostStepFor, readStep, stepper } from './common';
import { fleetLockId, fleetLockWorkflow } from './fleet-lock';

/** The undo's state: phase, the plan it asks to confirm, each host's rollback, the audit trail. */
export const undoStatusQuery = defineQuery<UndoStatus>('undoStatus');
/** What the undo would do (hosts, what it undoes on each, the revert), for the confirmation. */
export const undoPreviewQuery = defineQuery<UndoPreview | undefined>('undoPreview');
/**
 * The confirmation, fire-and-forget:
 * `temporal workflow signal --workflow-id undo-… --name confirmUndo --input '{"action":"confirm","requestedBy":"alice"}'`.
 * A malformed or late one is recorded in the audit trail as rejected and changes nothing.
 */
export const confirmUndoSignal = defineSignal<[UndoConfirmation]>('confirmUndo');
/** The same as an update: validated first, it returns the undo's state once it is carried out. */
export const confirmUndoUpdate = defineUpdate<UndoStatus, [UndoConfirmation]>('confirmUndoAndWait');

const AUTOMATIC = 'nixfleet (automatic)';
/**
 * Patch id: the undo takes the fleet lock only once confirmed, then re-reads the hosts it rolls back
 * (src/domain/undo-recheck.ts). Undos started before it held the lock from the start (their replay).
 */
export const UNDO_LOCK_AFTER_CONFIRM_PATCH = 'd-around-undo-lock-after-confirm';

/**
 * Undoes a deployment that succeeded, from what the audit store kept of it (its history may be long
 * gone): holds the fleet, reads the deployment's results and where each host is now, decides with
 * src/domain/undo.ts what is undone, shows it (undoPreview) and waits for a confirmation; then
 * reverts the merge (if still on the branch) and returns each host to its recorded generation, where
 * cancellation cannot interrupt it. Every step is in the deployment's audit trail (this run's entries).
 */
export async function undoWorkflow(input: UndoInput): Promise<UndoStatus> {
  const step = stepper();
  const status: UndoStatus = { undoId: input.undoId, deploymentId: input.deploymentId, phase: 'reading', requestedBy: input.requestedBy, hosts: [], audit: [] };
  const writes: Array<Promise<void>> = [];
  const repository = `${input.repository.owner}/${input.repository.name}`;
  const audit = (entry: Omit<RawAuditEntry, 'at'>): void => {
    const full: AuditEntry = storableAuditEntry({ at: new Date().toISOString(), ...entry });
    status.audit.push(full);
    const seq = status.audit.length;
    // In the deployment's own trail (its id), under this run: `nixfleet audit DEPLOYMENT` shows the undo.
    writes.push(
      proxyActivities<DeployActivities>({ ...auditStep, activityId: `audit-${seq}`, summary: `audit: ${full.actor.slice(0, 60)} undo` })
        .recordAudit({ deploymentId: input.deploymentId, runId: workflowInfo().runId, seq, repository, entry: full })
        .catch((err: unknown) => log.error('audit entry not recorded', { seq, error: failureOf(err).message })),
    );
  };
  const close = async (): Promise<UndoStatus> => {
    await CancellationScope.nonCancellable(() => Promise.all(writes));
    return status;
  };

  let confirmation: UndoConfirmation | undefined;
  const waiters: Array<() => void> = [];
  const accept = (req: UndoConfirmation): void => {
    if (confirmation === undefined) confirmation = req;
  };
  setHandler(undoStatusQuery, () => status);
  setHandler(undoPreviewQuery, () => status.preview);
  setHandler(confirmUndoSignal, (req) => {
    const reason = confirmRejectReason(req, status.phase);
    if (reason || confirmation !== undefined) {
      const r = req as Partial<UndoConfirmation> | null;
      auditRefusal(status, { actor: r?.requestedBy, action: 'undo', hosts: [], outcome: `confirmation rejected: ${reason ?? 'already confirmed'}` }, audit);
      return;
    }
    accept(req);
  });
  setHandler(
    confirmUndoUpdate,
    async (req) => {
      accept(req);
      await new Promise<void>((resolve) => waiters.push(resolve));
      return status;
    },
    {
      validator: (req) => {
        const reason = confirmRejectReason(req, status.phase) ?? (confirmation !== undefined ? 'already confirmed' : undefined);
        if (reason) throw new Error(reason);
      },
    },
  );

  try {
    // --- 1. what the deployment left, and whether the fleet is free --------------------------------
    const results = await step(readStep, 'results', `read ${input.deploymentId}'s results`).readDeploymentResults({ deploymentId: input.deploymentId });
    const mine = results && (input.runId === undefined || results.runId === input.runId) ? results : undefined;
    // Since the patch the fleet is free while the operator reads the plan: taken once confirmed.
    const lockAfterConfirm = patched(UNDO_LOCK_AFTER_CONFIRM_PATCH);
    const fleetHeldBy = lockAfterConfirm ? undefined : await holdFleet(input);
    const current = mine ? await readHosts(input, mine) : {};
    const merge = mine ? await mergeState(step, input, mine) : ({ kind: 'unknown', error: 'no record' } as MergeState);
    const decision = undoPlan({
      ...(mine ? { results: mine } : {}),
      fleet: { repository, branch: input.repository.branch },
      now: new Date().toISOString(),
      retentionDays: input.retentionDays,
      ...(fleetHeldBy ? { fleetHeldBy } : {}),
      current,
      forced: input.forceHosts,
      merge,
    });
    if (!decision.ok) {
      status.refusal = decision.refusal;
      status.phase = 'refused';
      audit({ actor: input.requestedBy, action: 'undo', hosts: [], outcome: `refused (${decision.refusal.code}): ${decision.refusal.reason}` });
      return await close();
    }
    const plan = decision.plan;
    status.preview = await previewOf(input, mine as DeploymentResults, plan);
    status.hosts = plan.hosts.map((h) => ({ name: h.name, state: 'pending' }));

    // --- 2. the confirmation ------------------------------------------------------------------------
    status.phase = 'awaiting-confirmation';
    audit({ actor: input.requestedBy, action: 'undo', hosts: plan.hosts.map((h) => h.name), outcome: `requested: ${planText(plan)}` });
    if (!(await condition(() => confirmation !== undefined, input.confirmWindowSeconds * 1000))) {
      status.phase = 'expired';
      audit({ actor: AUTOMATIC, action: 'undo', hosts: [], outcome: `not confirmed within ${input.confirmWindowSeconds}s: nothing undone` });
      return await close();
    }
    const c = confirmation as unknown as UndoConfirmation;
    status.confirmedBy = c.requestedBy;
    if (c.action === 'cancel') {
      status.phase = 'cancelled';
      audit({ actor: c.requestedBy, action: 'undo', hosts: [], outcome: 'cancelled: nothing undone' });
      return await close();
    }

    // --- 3. the fleet, and the hosts still where the operator saw them -------------------------------
    if (lockAfterConfirm) {
      status.phase = 'rechecking';
      const refuse = (code: 'fleet-busy' | 'changed-since-confirmation', reason: string): void => {
        status.refusal = { code, reason };
        status.phase = 'refused';
        audit({ actor: c.requestedBy, action: 'undo', hosts: [], outcome: `confirmed, then refused (${code}): ${reason}` });
      };
      const heldBy = await holdFleet(input);
      if (heldBy) {
        refuse('fleet-busy', `${heldBy} holds ${repository}@${input.repository.branch} now (it started while the undo awaited its confirmation): nothing undone; ask again once it closes`);
        return await close();
      }
      const now = await readHosts(input, mine as DeploymentResults, { only: new Set(plan.hosts.map((h) => h.name)), suffix: 'recheck' });
      const check = recheckConfirmedPlan(plan, now);
      if (!check.ok) {
        status.changes = check.changes;
        refuse('changed-since-confirmation', check.reason);
        return await close();
      }
    }

    // --- 4. undo, immune to cancellation -------------------------------------------------------------
    status.phase = 'undoing';
    await CancellationScope.nonCancellable(async () => {
      const r = mine as DeploymentResults;
      if (plan.revert.needed && r.mergeSha) {
        try {
          status.revert = await step(githubStep, 'github/revert', `revert ${r.mergeSha.slice(0, 12)} on ${input.repository.branch}`).revertMerge({
            deploymentId: input.deploymentId,
            repository: input.repository,
            mergeSha: r.mergeSha,
            ...(r.pullRequest !== undefined ? { pullRequest: r.pullRequest } : {}),
            mode: c.revertMode ?? input.revertMode,
            reason: `undo of ${input.deploymentId} (closed ${r.closedAt} ${r.outcome}) confirmed by ${c.requestedBy}`,
            requestedBy: c.requestedBy,
            requestedAt: new Date().toISOString(),
          });
        } catch (err) {
          const f = failureOf(err);
          status.revert = { kind: 'failed', error: f.message, conflict: f.type === 'RevertConflict' };
        }
      }
      const specs = new Map(input.hosts.map((h) => [h.name, h]));
      for (const h of plan.hosts) {
        const hs = status.hosts.find((x) => x.name === h.name);
        if (!hs) continue;
        hs.state = 'rolling-back';
        const spec = specs.get(h.name) as HostSpec;
        try {
          hs.now = await step(hostStepFor('rollback', spec), `${h.name}/rollback`, `undo: roll back ${h.name} to generation ${h.to.number}`).rollbackHost({ deploymentId: input.deploymentId, host: spec, to: h.to });
          hs.state = 'rolled-back';
        } catch (err) {
          hs.error = `rollback to generation ${h.to.number} failed: ${failureOf(err).message}`;
          hs.state = 'rollback-failed';
        }
      }
      const rolledBack = status.hosts.filter((x) => x.state === 'rolled-back').map((x) => x.name);
      const failed = status.hosts.filter((x) => x.state === 'rollback-failed').map((x) => x.name);
      status.summary = undoSummary(status.revert, plan.revert.note, rolledBack, failed, plan.skipped);
      audit({ actor: c.requestedBy, action: 'undo', reverted: revertLabel(status.revert), hosts: rolledBack, outcome: `undone: ${status.summary}` });
      status.phase = 'done';
    });
    return await close();
  } finally {
    for (const w of waiters.splice(0)) w();
  }
}

/** The fleet lock, as a deployment takes it: the holder's description when another holds it. */
async function holdFleet(input: UndoInput): Promise<string | undefined> {
  const lockId = fleetLockId(input.repository);
  try {
    await startChild(fleetLockWorkflow, { workflowId: lockId, args: [{ deploymentId: input.undoId }], parentClosePolicy: ParentClosePolicy.TERMINATE });
    return undefined;
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return `a running deployment (lock ${lockId})`;
    throw err;
  }
}

/** Where each host the deployment switched is now (a read; an unreachable host is listed, not fatal). */
async function readHosts(input: UndoInput, r: DeploymentResults, opts: { only?: ReadonlySet<string>; suffix?: string } = {}): Promise<Record<string, HostNow>> {
  const specs = new Map(input.hosts.map((h) => [h.name, h]));
  const out: Record<string, HostNow> = {};
  await Promise.all(
    r.hosts
      .filter((h) => h.state === 'switched' && (opts.only === undefined || opts.only.has(h.name)))
      .map(async (h) => {
        const spec = specs.get(h.name);
        if (!spec) {
          out[h.name] = { inFleet: false };
          return;
        }
        try {
          const g = await proxyActivities<SmokeActivities>({ ...readStep, activityId: `${h.name}/${opts.suffix ?? 'read'}`, summary: `${opts.suffix === undefined ? 'read' : 're-read'} ${h.name}'s generation` }).readHostGeneration(spec);
          out[h.name] = { inFleet: true, generation: g };
        } catch (err) {
          out[h.name] = { inFleet: true, error: failureOf(err).message };
        }
      }),
  );
  return out;
}

async function mergeState(step: ReturnType<typeof stepper>, input: UndoInput, r: DeploymentResults): Promise<MergeState> {
  if (!r.mergeSha || !r.ownMerge) return { kind: 'unknown', error: 'not this deployment\'s merge' };
  try {
    const q = await step(githubStep, 'github/quarantine', `is ${r.mergeSha.slice(0, 12)} still on ${input.repository.branch}?`).quarantineStatus({ repository: input.repository, mergeSha: r.mergeSha });
    return q.quarantined ? { kind: 'reverted', ...(q.why ? { by: q.why } : {}) } : { kind: 'on-branch' };
  } catch (err) {
    return { kind: 'unknown', error: failureOf(err).message };
  }
}

/** The plan with what it undoes on each host: the closure difference from where it is back to its recorded generation. */
async function previewOf(input: UndoInput, r: DeploymentResults, plan: UndoPlan): Promise<UndoPreview> {
  const specs = new Map(input.hosts.map((h) => [h.name, h]));
  const hosts = await Promise.all(
    plan.hosts.map(async (h) => {
      try {
        const closureDiff = await proxyActivities<ClosureDiffActivities>({ ...readStep, activityId: `diff-${h.name}`, summary: `closure diff ${h.name}` }).diffStorePaths({
          deploymentId: input.deploymentId,
          host: specs.get(h.name) as HostSpec,
          from: h.from.storePath,
          to: h.to.storePath,
        });
        return { ...h, closureDiff };
      } catch (err) {
        return { ...h, closureDiffError: failureOf(err).message };
      }
    }),
  );
  return { deploymentId: r.deploymentId, runId: r.runId, closedAt: r.closedAt, outcome: r.outcome, retainedUntil: plan.retainedUntil, hosts, skipped: plan.skipped, revert: plan.revert };
}

const gen = (g: Generation): string => `${g.number}`;
function planText(plan: UndoPlan): string {
  const hosts = plan.hosts.map((h) => `${h.name} ${gen(h.from)} → ${gen(h.to)}${h.forced ? ' (named)' : ''}`).join(', ') || 'no host';
  const skipped = plan.skipped.length ? `; left alone: ${plan.skipped.map((s) => `${s.name} (${s.why})`).join(', ')}` : '';
  return `roll back ${hosts}; ${plan.revert.note}${skipped}`;
}
