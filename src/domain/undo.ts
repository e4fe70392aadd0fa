/**
 * Undoing a deployment that succeeded, days later (issue 17, item 4). Pure (bundled into workflow
 * code): the undo workflow (workflows/undo.ts) gathers the facts, these functions decide.
 *
 * - what a deployment left behind, as the deployment writes it at close into the audit store
 *   (`DeploymentResults`): each host's generation before and after, the merge sha; the store keeps it
 *   after Temporal's retention has dropped the deployment's history;
 * - whether an undo is refused, and why (`undoPlan`): no record, not a success, outside the retention
 *   period, a deployment of the fleet running now, a named host the deployment did not switch, nothing
 *   left to undo;
 * - which hosts are undone (`undoPlan`): only hosts still on the deployment's generation; a host that
 *   changed since is listed and left alone unless the operator names it;
 * - the confirmation's rules (`confirmShapeError`, `confirmRejectReason`).
 *
 * Tested in tests/domain/undo.test.ts and tests/property/undo.property.test.ts.
 */
import { AUDIT_LIMITS } from './audit';
import { encodeId } from './ids';
import type { ClosureDiff } from './closure-diff';
import type { AuditEntry, DeploymentOutcome, Generation, HostKind, HostSpec, HostState, RepoRef, RevertOutcome, RevertPolicy } from './deployment';

/** One host as the deployment left it. */
export interface ResultsHost {
  name: string;
  kind: HostKind;
  state: HostState;
  /** The generation recorded before the switch (the way back). */
  before?: Generation;
  /** The generation the switch reached. */
  after?: Generation;
}

/**
 * What a closed deployment left behind, written once at close (append-only, idempotent on
 * (deploymentId, runId)). Hosts in the order the deployment deployed them.
 */
export interface DeploymentResults {
  deploymentId: string;
  runId: string;
  /** `owner/name` */
  repository: string;
  branch: string;
  closedAt: string;
  outcome: DeploymentOutcome;
  /** The commit the hosts were deployed from. */
  mergeSha?: string;
  /** The deployment merged it itself (a pull request): an undo reverts it. A commit deploy's commit is not its own. */
  ownMerge: boolean;
  pullRequest?: number;
  hosts: ResultsHost[];
}

/** A host's row in the results record, from the deployment's host status. */
export function resultsHostOf(h: Pick<ResultsHost, 'name' | 'kind' | 'state' | 'before' | 'after'>): ResultsHost {
  return { name: h.name, kind: h.kind, state: h.state, ...(h.before ? { before: h.before } : {}), ...(h.after ? { after: h.after } : {}) };
}

/**
 * The results record by reference (issue 13, bytes): everything but the hosts, which the activity
 * reads a page at a time from the deployment's own `hostsPage` query (the closed deployment's final
 * state), so the record's ~280 B per host never enter the deployment's history. `hostsFrom` names the
 * run and what the pages must add up to (a check that the right state was read).
 */
export interface DeploymentResultsRef extends Omit<DeploymentResults, 'hosts'> {
  hostsFrom: { workflowId: string; count: number; first?: string; last?: string };
}

/** The record from its reference and the hosts read; throws when they do not match the reference. */
export function resultsFromRef(ref: DeploymentResultsRef, hosts: readonly ResultsHost[]): DeploymentResults {
  const { hostsFrom, ...rest } = ref;
  const problem =
    hosts.length !== hostsFrom.count
      ? `${hosts.length} hosts read where the deployment has ${hostsFrom.count}`
      : hostsFrom.count > 0 && (hosts[0]?.name !== hostsFrom.first || hosts[hosts.length - 1]?.name !== hostsFrom.last)
        ? `the hosts read run from ${hosts[0]?.name ?? '-'} to ${hosts[hosts.length - 1]?.name ?? '-'}, not from ${hostsFrom.first ?? '-'} to ${hostsFrom.last ?? '-'}`
        : new Set(hosts.map((h) => h.name)).size !== hosts.length
          ? 'a host appears twice in the hosts read'
          : undefined;
  if (problem) throw new Error(`results of ${ref.deploymentId}: ${problem}`);
  return { ...rest, hosts: hosts.map(resultsHostOf) };
}

/** Undoable outcomes: a deployment that failed has its own rollback (while it awaits an operator). */
export const UNDOABLE_OUTCOMES: readonly DeploymentOutcome[] = ['succeeded', 'succeeded-with-failures'];

export const DEFAULT_UNDO_RETENTION_DAYS = 14;
export const MAX_UNDO_RETENTION_DAYS = 365;

export type UndoRefusalCode = 'no-record' | 'wrong-fleet' | 'not-successful' | 'outside-retention' | 'fleet-busy' | 'unknown-host' | 'nothing-left' | 'changed-since-confirmation';
export interface UndoRefusal {
  code: UndoRefusalCode;
  reason: string;
}

/** Where the host is now, as read when the undo was asked for. */
export interface HostNow {
  /** In the fleet file the undo was asked with (its address comes from there). */
  inFleet: boolean;
  generation?: Generation;
  /** Why the generation could not be read. */
  error?: string;
}

/** Is the merge still on the branch (not reverted since)? `unknown`: GitHub could not say. */
export type MergeState = { kind: 'on-branch' } | { kind: 'reverted'; by?: string } | { kind: 'unknown'; error: string };

export interface UndoFacts {
  results?: DeploymentResults;
  /** The fleet file's repository (`owner/name`) and branch: the record must be of this fleet. */
  fleet: { repository: string; branch: string };
  now: string;
  retentionDays: number;
  /** The deployment holding the fleet now, when one does (the undo could not take the fleet lock). */
  fleetHeldBy?: string;
  current: Readonly<Record<string, HostNow>>;
  /** Hosts the operator named: undone even when they changed since. */
  forced: readonly string[];
  merge: MergeState;
}

export interface UndoHost {
  name: string;
  /** Where it is now (the deployment's generation, or what it changed to since for a named host). */
  from: Generation;
  /** The generation recorded before the deployment. */
  to: Generation;
  /** Changed since the deployment; undone only because the operator named it. */
  forced: boolean;
}

export type UndoSkipReason = 'changed-since' | 'already-back' | 'not-switched' | 'not-in-fleet' | 'unreadable';
export interface UndoSkip {
  name: string;
  why: UndoSkipReason;
  /** Human text: what the host runs now, or why it is left alone. */
  detail: string;
  now?: Generation;
}

export interface UndoPlan {
  /** Hosts to roll back, in the order they are rolled back: the reverse of the deployment's order. */
  hosts: UndoHost[];
  /** Hosts left alone, with why. */
  skipped: UndoSkip[];
  revert: { needed: boolean; mergeSha?: string; note: string };
  /** When the retention period ends. */
  retainedUntil: string;
}

export type UndoDecision = { ok: true; plan: UndoPlan } | { ok: false; refusal: UndoRefusal };

const DAY_MS = 24 * 3600 * 1000;

export function retainedUntil(closedAt: string, retentionDays: number): string {
  const t = Date.parse(closedAt);
  return Number.isNaN(t) ? closedAt : new Date(t + retentionDays * DAY_MS).toISOString();
}

const genText = (g: Generation): string => `generation ${g.number} (${g.storePath})`;
const sameSystem = (a: Generation, b: Generation): boolean => a.storePath === b.storePath;

/**
 * The refusal, or the plan: which hosts are returned to their recorded generation and whether the merge
 * is reverted. A host counts as "still on the deployment's generation" when it runs the store path the
 * deployment switched it to (its generation number may differ: a Home Manager activation or a
 * collected link renumbers).
 */
export function undoPlan(f: UndoFacts): UndoDecision {
  const refuse = (code: UndoRefusalCode, reason: string): UndoDecision => ({ ok: false, refusal: { code, reason } });
  const r = f.results;
  if (!r) return refuse('no-record', 'no results of this deployment in the audit store (it did not close, closed before results were recorded, or ran without an audit store)');
  if (r.repository !== f.fleet.repository || r.branch !== f.fleet.branch) {
    return refuse('wrong-fleet', `the deployment was of ${r.repository}@${r.branch}, the fleet file is of ${f.fleet.repository}@${f.fleet.branch}`);
  }
  if (!UNDOABLE_OUTCOMES.includes(r.outcome)) return refuse('not-successful', `the deployment ended ${r.outcome}: only a deployment that succeeded can be undone (a failed one is rolled back while it awaits an operator)`);
  const until = retainedUntil(r.closedAt, f.retentionDays);
  const closed = Date.parse(r.closedAt);
  const now = Date.parse(f.now);
  if (Number.isNaN(closed) || Number.isNaN(now) || now > closed + f.retentionDays * DAY_MS) {
    return refuse('outside-retention', `the deployment closed at ${r.closedAt}; undo is possible for ${f.retentionDays} days (until ${until})`);
  }
  if (f.fleetHeldBy !== undefined) return refuse('fleet-busy', `${f.fleetHeldBy} holds ${r.repository}@${r.branch}: wait for it to close, then undo`);

  const switched = new Set(r.hosts.filter((h) => h.state === 'switched' && h.before && h.after).map((h) => h.name));
  const unknown = f.forced.filter((n) => !switched.has(n));
  if (unknown.length > 0) return refuse('unknown-host', `not switched by this deployment, nothing of its to undo: ${unknown.join(', ')}`);
  const forced = new Set(f.forced);

  const hosts: UndoHost[] = [];
  const skipped: UndoSkip[] = [];
  for (const h of [...r.hosts].reverse()) {
    if (!switched.has(h.name)) {
      skipped.push({ name: h.name, why: 'not-switched', detail: `${h.state} in this deployment: nothing of its to undo` });
      continue;
    }
    const before = h.before as Generation;
    const after = h.after as Generation;
    const now = f.current[h.name];
    if (!now?.inFleet) {
      skipped.push({ name: h.name, why: 'not-in-fleet', detail: 'not in the fleet file any more: its address is unknown' });
      continue;
    }
    if (!now.generation) {
      skipped.push({ name: h.name, why: 'unreadable', detail: `its generation could not be read: ${now.error ?? 'no answer'}` });
      continue;
    }
    const g = now.generation;
    if (sameSystem(g, after)) hosts.push({ name: h.name, from: g, to: before, forced: false });
    else if (sameSystem(g, before)) skipped.push({ name: h.name, why: 'already-back', detail: `already back on ${genText(g)}`, now: g });
    else if (forced.has(h.name)) hosts.push({ name: h.name, from: g, to: before, forced: true });
    else skipped.push({ name: h.name, why: 'changed-since', detail: `changed since: runs ${genText(g)}, the deployment left ${genText(after)}; name it to undo it anyway`, now: g });
  }

  const revert = revertPlan(r, f.merge);
  if (hosts.length === 0 && !revert.needed) return refuse('nothing-left', `nothing left to undo: ${revert.note}; ${skipped.map((s) => `${s.name}: ${s.detail}`).join('; ') || 'no hosts'}`);
  return { ok: true, plan: { hosts, skipped, revert, retainedUntil: until } };
}

function revertPlan(r: DeploymentResults, merge: MergeState): UndoPlan['revert'] {
  const sha = r.mergeSha;
  if (sha === undefined) return { needed: false, note: 'nothing was merged' };
  if (!r.ownMerge) return { needed: false, mergeSha: sha, note: `a commit deploy: ${sha.slice(0, 12)} is not this deployment's merge to revert` };
  if (merge.kind === 'reverted') return { needed: false, mergeSha: sha, note: `the merge ${sha.slice(0, 12)} is no longer on the branch: reverted already${merge.by ? ` (${merge.by})` : ''}` };
  // Unknown: the revert itself reads the branch and says what it found (it never commits twice).
  return { needed: true, mergeSha: sha, note: merge.kind === 'unknown' ? `the merge ${sha.slice(0, 12)} will be reverted if still on the branch (GitHub could not say: ${merge.error})` : `the merge ${sha.slice(0, 12)} is still on the branch: it will be reverted` };
}

/** The undo workflow's id: one per deployment run (a request sent twice, by a retry or a second click, finds the first). */
export function undoWorkflowId(deploymentId: string, runId: string): string {
  return encodeId('undo-', [deploymentId, runId.replace(/[^A-Za-z0-9]/g, '').slice(0, 12)]);
}

// --- the confirmation -----------------------------------------------------------------------------

/** `rechecking`: confirmed; taking the fleet lock and reading the hosts again (src/domain/undo-recheck.ts). */
export type UndoPhase = 'reading' | 'awaiting-confirmation' | 'rechecking' | 'undoing' | 'done' | 'refused' | 'cancelled' | 'expired';

export interface UndoConfirmation {
  /** Who confirmed: an identity the caller authenticated. */
  requestedBy: string;
  /** `cancel`: close the undo without touching anything. */
  action: 'confirm' | 'cancel';
  /** A revert pull request instead of a commit (branch protection); default: the fleet's policy. */
  revertMode?: Exclude<RevertPolicy, 'off'>;
}

export function confirmShapeError(req: unknown): string | undefined {
  if (typeof req !== 'object' || req === null) return 'request must be an object';
  const r = req as Partial<Record<keyof UndoConfirmation, unknown>>;
  if (typeof r.requestedBy !== 'string' || r.requestedBy.trim() === '') return 'requestedBy: required (who confirms)';
  if (r.requestedBy.length > AUDIT_LIMITS.actor) return `requestedBy: at most ${AUDIT_LIMITS.actor} characters (got ${r.requestedBy.length})`;
  if (r.action !== 'confirm' && r.action !== 'cancel') return 'action: "confirm" or "cancel"';
  if (r.revertMode !== undefined && r.revertMode !== 'commit' && r.revertMode !== 'pull-request') return 'revertMode: "commit" or "pull-request"';
  return undefined;
}

/** Why a confirmation is refused now (its shape, or the undo is not waiting for one). */
export function confirmRejectReason(req: unknown, phase: UndoPhase): string | undefined {
  const shape = confirmShapeError(req);
  if (shape) return shape;
  if (phase !== 'awaiting-confirmation') return `the undo is ${phase}, not awaiting a confirmation`;
  return undefined;
}

/** One line for the audit trail and the status: what the undo did. */
export function undoSummary(revert: RevertOutcome | undefined, revertNote: string, rolledBack: readonly string[], failed: readonly string[], skipped: readonly UndoSkip[]): string {
  const parts: string[] = [];
  if (revert === undefined) parts.push(`not reverted: ${revertNote}`);
  else if (revert.kind === 'commit') parts.push(revert.alreadyReverted ? `already reverted (${revert.commitSha.slice(0, 12)})` : `reverted by ${revert.commitSha.slice(0, 12)}`);
  else if (revert.kind === 'pull-request') parts.push(`revert pull request #${revert.number} opened`);
  else parts.push(`revert failed: ${revert.error}`);
  parts.push(rolledBack.length ? `rolled back: ${rolledBack.join(', ')}` : 'no host rolled back');
  if (failed.length) parts.push(`rollback failed: ${failed.join(', ')}`);
  if (skipped.length) parts.push(`left alone: ${skipped.map((s) => `${s.name} (${s.why})`).join(', ')}`);
  return parts.join('; ');
}

// --- the undo workflow's input and state ----------------------------------------------------------

export interface UndoInput {
  undoId: string;
  /** The deployment to undo and the run whose results are undone (absent: its latest). */
  deploymentId: string;
  runId?: string;
  /** From the fleet file the undo was asked with: the repository, every host's address. */
  repository: RepoRef;
  hosts: HostSpec[];
  retentionDays: number;
  /** Hosts the operator named: undone even when they changed since. */
  forceHosts: string[];
  /** The fleet's revert policy ('off': a commit) unless the confirmation asks otherwise. */
  revertMode: Exclude<RevertPolicy, 'off'>;
  requestedBy: string;
  /** How long the undo waits for its confirmation before it closes untouched. */
  confirmWindowSeconds: number;
}

export interface UndoPreview {
  deploymentId: string;
  runId?: string;
  closedAt?: string;
  outcome?: DeploymentOutcome;
  retainedUntil?: string;
  /** The hosts the undo returns to their recorded generation, in order, with what it undoes on each. */
  hosts: Array<UndoHost & { closureDiff?: ClosureDiff; closureDiffError?: string }>;
  skipped: UndoSkip[];
  revert: UndoPlan['revert'];
}

export interface UndoHostResult {
  name: string;
  state: 'pending' | 'rolling-back' | 'rolled-back' | 'rollback-failed';
  now?: Generation;
  error?: string;
}

export interface UndoStatus {
  undoId: string;
  deploymentId: string;
  phase: UndoPhase;
  requestedBy: string;
  refusal?: UndoRefusal;
  /** Hosts that moved between the plan and the confirmation (a refusal `changed-since-confirmation`). */
  changes?: Array<{ name: string; confirmed: Generation; now?: Generation; error?: string }>;
  preview?: UndoPreview;
  confirmedBy?: string;
  hosts: UndoHostResult[];
  revert?: RevertOutcome;
  summary?: string;
  audit: AuditEntry[];
  /** Refused confirmations past the trail's refusal limits (REFUSAL_AUDIT_LIMITS): not recorded. */
  refusalsNotRecorded?: number;
}
