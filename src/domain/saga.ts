/**
 * The deployment's rules, as pure functions over what the deployment knows (bundled into workflow
 * code: no Node built-ins, no libraries). The deploy workflow orchestrates; these decide:
 *
 * - which hosts a rollback touches, and in which order (`rollbackCandidates`);
 * - whether the merge is to be reverted (`revertNeeded`: automatically; `revertAvailable`: on request);
 * - which manual actions apply (`allowedActions`), what a rollback would touch (`preview`), and whether
 *   a manual request is refused and why (`rejectReason`: one function for the update's validator and
 *   the signal's handler, so a request is accepted exactly when its action is allowed);
 * - the texts the audit trail and the status carry (`revertSummary`, `revertLabel`, `failureText`).
 *
 * Tested in tests/domain/saga.test.ts and tests/property/saga.property.test.ts.
 */
import { AUDIT_LIMITS, clip } from './audit';
import { failedOutcome } from './outcome';
import { MAX_PAGE_SIZE } from './host-pages';
import type { DeploymentOutcome, Generation, HostStatus, ManualAction, Phase, RevertOutcome, RollbackPreview, RollbackRequest, RolloutPolicy } from './deployment';

/** The manual actions, in the order the dashboard offers them. */
export const MANUAL_ACTIONS = ['revert', 'revert-and-rollback', 'dismiss'] as const satisfies readonly ManualAction[];

/** Each host's position in the rollout (waves in order, hosts in order within a wave). */
export type DeployOrder = ReadonlyMap<string, number>;

export function deployOrder(rollout: Pick<RolloutPolicy, 'waves'>): DeployOrder {
  const order = new Map<string, number>();
  for (const w of rollout.waves) for (const h of w.hosts) if (!order.has(h)) order.set(h, order.size);
  return order;
}

/**
 * What the deployment knows when it decides what to undo.
 * `scope`: `deployment` after a failed deployment (undo everything it changed); `failed-hosts` after a
 * deployment that finished within its failure budget but left failed hosts off their recorded
 * generation (undo only those hosts; the merge stays, the hosts that switched stay).
 */
export interface SagaFacts {
  phase: Phase;
  hosts: readonly HostStatus[];
  order: DeployOrder;
  /** The commit the hosts were deployed from (the merge, or the commit deployed). */
  mergeSha?: string;
  /** The last revert attempt, when one was made. */
  revert?: RevertOutcome;
  /** The deployment merged the change itself (a pull request): its compensation reverts it. */
  ownMerge: boolean;
  scope: 'deployment' | 'failed-hosts';
  /** A manual rollback is running now. */
  busy: boolean;
}

/** A host that changed (or may have) and is not back on its recorded generation. */
function offRecorded(h: HostStatus, scope: SagaFacts['scope']): boolean {
  if (h.before === undefined) return false;
  if (h.state === 'rollback-failed') return true;
  if (h.state === 'failed') return h.profileMoved === true || h.uncertain !== undefined;
  return h.state === 'switched' && scope === 'deployment';
}

/**
 * The hosts a rollback touches, in the order it touches them: the reverse of the deployment order
 * (last wave first, the last host of a wave first). A host the rollout does not name comes last.
 */
export function rollbackCandidates(f: Pick<SagaFacts, 'hosts' | 'order' | 'scope'>): HostStatus[] {
  return f.hosts
    .map((h, pos) => ({ h, pos, idx: f.order.get(h.name) ?? -1 }))
    .filter(({ h }) => offRecorded(h, f.scope))
    .sort((a, b) => b.idx - a.idx || b.pos - a.pos)
    .map(({ h }) => h);
}

const notReverted = (f: Pick<SagaFacts, 'mergeSha' | 'revert'>): boolean => f.mergeSha !== undefined && (f.revert === undefined || f.revert.kind === 'failed');

/**
 * The compensation reverts the merge only when this deployment made it, it is not reverted yet (or
 * the last attempt failed), and the deployment is being undone as a whole. A commit deploy never
 * reverts on its own: the commit is not this deployment's to take back (issue 12, bug 2).
 */
export function revertNeeded(f: Pick<SagaFacts, 'mergeSha' | 'revert' | 'ownMerge' | 'scope'>): boolean {
  return f.ownMerge && f.scope === 'deployment' && notReverted(f);
}

/** An operator may ask for the revert of what was deployed (a commit deploy too) while it is not reverted. */
export function revertAvailable(f: Pick<SagaFacts, 'mergeSha' | 'revert' | 'scope'>): boolean {
  return f.scope === 'deployment' && notReverted(f);
}

export function allowedActions(f: SagaFacts): ManualAction[] {
  if (f.phase !== 'awaiting-operator') return [];
  const actions: ManualAction[] = [];
  const revert = revertAvailable(f);
  if (revert) actions.push('revert');
  if (revert || rollbackCandidates(f).length > 0) actions.push('revert-and-rollback');
  actions.push('dismiss');
  return actions;
}

export function preview(f: SagaFacts): RollbackPreview {
  return {
    hosts: rollbackCandidates(f).map((h) => ({ name: h.name, from: h.after, to: h.before as Generation, state: h.state })),
    revert: { needed: revertAvailable(f), mergeSha: f.mergeSha, alreadyDone: f.revert?.kind === 'failed' ? undefined : f.revert },
    allowed: allowedActions(f),
  };
}

/** The rollback preview query's argument (a display's first hosts only); absent: every host. */
export interface PreviewOptions {
  limit?: number;
}

/** The limit a preview query asks for, checked (it may come from outside, e.g. `temporal workflow query --input`); undefined: none. */
export function previewLimitOf(opts: unknown): number | undefined {
  if (opts === undefined || opts === null) return undefined;
  if (typeof opts !== 'object') throw new Error('rollbackPreview: the argument is an object ({ limit })');
  const limit = (opts as PreviewOptions).limit;
  if (limit === undefined) return undefined;
  if (!Number.isSafeInteger(limit) || limit < 0 || limit > MAX_PAGE_SIZE) throw new Error(`limit: a whole number from 0 to ${MAX_PAGE_SIZE} (got ${clip(JSON.stringify(limit) ?? String(limit), 50)})`);
  return limit;
}

/**
 * The preview's first `limit` hosts, with `hostCount` (all of them); unchanged without a limit. Applied
 * in the workflow's query, and again by the API to an answer of a worker that ignored the argument
 * (older than it): a preview cut already keeps its `hostCount`.
 */
export function limitPreview(p: RollbackPreview, limit: number | undefined): RollbackPreview {
  if (limit === undefined) return p;
  return { ...p, hosts: p.hosts.slice(0, limit), hostCount: p.hostCount ?? p.hosts.length };
}

/**
 * The outcome once the deployment stopped: within its budget (`failed-hosts`) it succeeded with
 * failures whatever became of them (the status names the hosts still off their recorded generation);
 * otherwise what failedOutcome says from the hosts and the revert.
 */
export function outcomeOf(f: Pick<SagaFacts, 'hosts' | 'order' | 'scope' | 'revert'>): DeploymentOutcome {
  if (f.scope === 'failed-hosts') return 'succeeded-with-failures';
  return failedOutcome({ hosts: f.hosts, rollbackCandidates: rollbackCandidates(f).length, revert: f.revert });
}

/** Why a request is malformed, naming the field; undefined when its shape is valid. */
export function requestShapeError(req: unknown): string | undefined {
  if (typeof req !== 'object' || req === null) return 'request must be an object';
  const r = req as Partial<Record<keyof RollbackRequest, unknown>>;
  if (typeof r.requestedBy !== 'string' || r.requestedBy.trim() === '') return 'requestedBy: required (who asked)';
  if (r.requestedBy.length > AUDIT_LIMITS.actor) return `requestedBy: at most ${AUDIT_LIMITS.actor} characters (got ${r.requestedBy.length})`;
  if (!(MANUAL_ACTIONS as readonly unknown[]).includes(r.action)) return `action: must be revert, revert-and-rollback or dismiss (got ${clip(JSON.stringify(r.action) ?? 'nothing', 200)})`;
  if (r.revertMode !== undefined && r.revertMode !== 'commit' && r.revertMode !== 'pull-request') return 'revertMode: must be commit or pull-request';
  if (r.reason !== undefined && (typeof r.reason !== 'string' || r.reason.length > 500)) return 'reason: a text of at most 500 characters';
  return undefined;
}

/** Why a manual request is refused now, or undefined when it is accepted (exactly when its action is allowed). */
export function rejectReason(req: unknown, f: SagaFacts): string | undefined {
  const shape = requestShapeError(req);
  if (shape) return shape;
  const { action } = req as RollbackRequest;
  if (f.busy) return 'a manual rollback is already in progress';
  const allowed = allowedActions(f);
  if (!allowed.includes(action)) {
    return f.phase === 'awaiting-operator'
      ? `action ${action} no longer applies (allowed now: ${allowed.join(', ')})`
      : `the deployment is ${f.phase}; manual rollback applies only to a failed deployment awaiting an operator`;
  }
  return undefined;
}

/** What was reverted, for the audit entry's `reverted` field: a commit sha or a pull request URL. */
export function revertLabel(r: RevertOutcome | undefined): string | undefined {
  return r === undefined ? undefined : r.kind === 'commit' ? r.commitSha : r.kind === 'pull-request' ? r.url : undefined;
}

/**
 * The revert, as an audit entry tells it. `earlier`: who made this revert before, when the entry's
 * own action did not make it (then it says "already reverted by …", never "reverted in …" as if the
 * entry's actor had done it: issue 12, bug 4).
 */
export function revertSummary(r: RevertOutcome | undefined, earlier?: string): string {
  if (r === undefined) return 'no revert';
  if (earlier !== undefined && r.kind === 'commit') return `already reverted by ${earlier} in ${r.commitSha.slice(0, 12)}`;
  if (earlier !== undefined && r.kind === 'pull-request') return `already reverted by ${earlier}: revert pull request #${r.number}`;
  if (r.kind === 'commit') return r.alreadyReverted ? `already reverted (${r.commitSha.slice(0, 12)})` : `reverted in ${r.commitSha.slice(0, 12)}`;
  if (r.kind === 'pull-request') return `revert pull request #${r.number}${r.fellBackFromProtectedBranch ? ' (branch protected: fell back to a pull request)' : ''}`;
  return `revert failed: ${r.error}`;
}

/** "rolled back: a, b; rollback failed: c", as the audit entries say it. */
export function rollbackSummary(r: { rolledBack: string[]; failed: string[] }): string {
  return `rolled back: ${r.rolledBack.join(', ') || 'none'}${r.failed.length ? `; rollback failed: ${r.failed.join(', ')}` : ''}`;
}

/** Why a deployment stopped, as a type the control flow can rely on (never its message text). */
export type DeployFailure =
  /** The build-first phase failed on these hosts: no host was switched. */
  | { kind: 'build'; hosts: Array<{ host: string; error: string }> }
  /** Failures exceeded the budget in a wave (budget 0: the first failure). */
  | { kind: 'halted'; failed: string[]; failures: number; budget: number; error?: string }
  /** The deployment was cancelled; `host` was being switched then. */
  | { kind: 'cancelled'; host?: string }
  /** A wave's child workflow failed or was terminated: its hosts' state was re-read where unknown. */
  | { kind: 'wave-failed'; wave: string; error: string; host?: string }
  /** An operator aborted the deployment (the `abort` control). */
  | { kind: 'aborted'; by: string; reason?: string };

/** The host the failure is attributed to (status.failedHost). */
export function failedHostOf(f: DeployFailure): string | undefined {
  switch (f.kind) {
    case 'build':
      return f.hosts[0]?.host;
    case 'halted':
      return f.failed[0];
    case 'cancelled':
    case 'wave-failed':
      return f.host;
    case 'aborted':
      return undefined;
  }
}

/** The failure as the status, the audit trail and the revert commit tell it. */
export function failureText(f: DeployFailure): string {
  const host = failedHostOf(f);
  const on = (message: string): string => (host ? `switch failed on ${host}: ${message}` : message);
  switch (f.kind) {
    case 'build':
      return `the build failed on ${f.hosts.map((h) => h.host).join(', ')}; no host was switched: ${f.hosts[0]?.error ?? 'failed'}`;
    case 'halted':
      return on(f.budget > 0 ? `${f.failures} hosts failed, over the failure budget of ${f.budget}: ${f.failed.join(', ')}` : (f.error ?? 'failed'));
    case 'cancelled':
      return on('deployment cancelled');
    case 'wave-failed':
      return `wave ${f.wave} failed before it finished (${f.error}); its hosts were re-read`;
    case 'aborted':
      return `aborted by ${f.by}${f.reason ? `: ${f.reason}` : ''}`;
  }
}
