/**
 * Operator controls over a running deployment, as pure rules (bundled into workflow code: no Node
 * built-ins, no libraries). The workflow (workflows/controls.ts) carries them out; these decide which
 * control applies when, and why a request is refused:
 *
 * - `pause`: no further host starts (the hosts in flight finish); the next wave and the end of a bake
 *   wait too. Applies while building, deploying or baking, unless paused already.
 * - `resume`: undoes a pause.
 * - `abort`: halt now (no further host starts, the hosts in flight finish their step) and compensate as
 *   a failure does (the fleet's `onFailure`), then await the operator. Applies while building,
 *   deploying or baking (paused or not).
 * - `skip` (with `host`): a host not started yet is left out (it ends `held`, never contacted).
 * - `retry-failed`: while the deployment awaits an operator after host failures, deploys the failed
 *   hosts again; the hosts that switched are kept. Only while the change is still in place: the merge
 *   is not reverted, and no host that switched has been rolled back.
 * - `promote`: ends the current bake at once (the next wave starts).
 *
 * `controlRejectReason` is one function for the update and the signal, so a request is accepted
 * exactly when its control is in `allowedControls`. `controlVerdict` splits a refusal into malformed
 * (the update's validator rejects it, out of history) and not applicable (the handler records it,
 * within REFUSAL_AUDIT_LIMITS, and fails the update with the same reason).
 * Tested in tests/domain/controls.test.ts and tests/property/controls.property.test.ts.
 */
import { AUDIT_LIMITS, clip, REFUSAL_AUDIT_LIMITS, refusalRecorded } from './audit';
import { HOST_STATES, type AuditEntry, type HostState, type HostStatus, type Phase, type RevertOutcome } from './deployment';

export const CONTROLS = ['pause', 'resume', 'abort', 'skip', 'retry-failed', 'promote'] as const;
export type Control = (typeof CONTROLS)[number];

export interface ControlRequest {
  control: Control;
  /** Who asked: an identity the caller authenticated. */
  requestedBy: string;
  /** The host to skip (`skip` only). */
  host?: string;
  /**
   * `skip` only: the state the caller saw the host in (the API merges the running wave child's records,
   * which the deployment itself cannot see). A state other than `pending` makes the skip refused, and
   * so recorded, with the reason the deployment would give; it can only refuse the caller's own request.
   */
  hostState?: HostState;
  reason?: string;
}

/** What the deployment knows when it decides whether a control applies. */
export interface ControlFacts {
  phase: Phase;
  paused: boolean;
  /** An abort was accepted (the deployment is halting). */
  aborting: boolean;
  /** A manual rollback or a retry is running now. */
  busy: boolean;
  hosts: readonly HostStatus[];
  mergeSha?: string;
  revert?: RevertOutcome;
}

/** The controls' state as the status shows it. */
export interface ControlState {
  paused: boolean;
  pausedBy?: string;
  abortedBy?: string;
  /** Hosts an operator skipped. */
  skipped: string[];
  /** Retries run (each over the failed hosts of the time). */
  retries: number;
}

const RUNNING: readonly Phase[] = ['building', 'deploying', 'baking'];

/**
 * The hosts a retry deploys again: those whose switch failed (`failed`; `rolled-back` with the switch's
 * `error` kept: a host that switched and was rolled back carries none), and those whose rollback
 * failed (where they are is unknown: the retry switches them to the target again).
 */
export function retryCandidates(hosts: readonly HostStatus[]): HostStatus[] {
  return hosts.filter((h) => h.state === 'failed' || h.state === 'rollback-failed' || (h.state === 'rolled-back' && h.error !== undefined));
}

/** Hosts that switched and have been rolled back since: their success is undone. */
function undoneSuccesses(hosts: readonly HostStatus[]): HostStatus[] {
  return hosts.filter((h) => h.state === 'rolled-back' && h.error === undefined);
}

const merged = (f: Pick<ControlFacts, 'mergeSha' | 'revert'>): boolean => f.mergeSha !== undefined && (f.revert === undefined || f.revert.kind === 'failed');

/** Why `control` does not apply now (ignoring the request's shape), or undefined when it does. */
function notApplicable(control: Control, f: ControlFacts, host?: string, seenState?: HostState): string | undefined {
  const running = RUNNING.includes(f.phase);
  switch (control) {
    case 'pause':
      if (!running) return `the deployment is ${f.phase}; pause applies only while it builds, deploys or bakes`;
      if (f.aborting) return 'the deployment is being aborted';
      if (f.paused) return 'the deployment is already paused';
      return undefined;
    case 'resume':
      if (!running) return `the deployment is ${f.phase}; resume applies only to a paused deployment that is still running`;
      if (f.aborting) return 'the deployment is being aborted';
      if (!f.paused) return 'the deployment is not paused';
      return undefined;
    case 'abort':
      if (!running) {
        return f.phase === 'awaiting-operator'
          ? 'the deployment has already stopped and awaits an operator: use rollback (revert, revert-and-rollback) or dismiss'
          : `the deployment is ${f.phase}; abort applies only while it builds, deploys or bakes`;
      }
      if (f.aborting) return 'the deployment is already being aborted';
      return undefined;
    case 'skip': {
      if (!running) return `the deployment is ${f.phase}; skip applies only while it builds, deploys or bakes`;
      if (f.aborting) return 'the deployment is being aborted';
      if (host === undefined) return 'host: required (the host to skip)';
      const h = f.hosts.find((x) => x.name === host);
      if (!h) return `host: ${clip(host, AUDIT_LIMITS.hostName)} is not in this deployment`;
      const state = seenState !== undefined && seenState !== 'pending' ? seenState : h.state;
      if (state !== 'pending') return `host ${h.name} is ${state}; only a host not started yet can be skipped`;
      return undefined;
    }
    case 'retry-failed': {
      if (f.phase !== 'awaiting-operator') return `the deployment is ${f.phase}; retry-failed applies only to a deployment awaiting an operator after host failures`;
      if (f.busy) return 'a manual rollback or retry is already in progress';
      if (f.mergeSha === undefined) return 'nothing was merged or deployed: there is nothing to retry';
      if (!merged(f)) return 'the change was reverted: retrying would deploy a reverted change (start a new deployment)';
      const undone = undoneSuccesses(f.hosts);
      if (undone.length > 0) return `hosts that switched were rolled back (${undone.map((h) => h.name).join(', ')}): there is nothing to keep; start a new deployment`;
      if (retryCandidates(f.hosts).length === 0) return 'no host failed: nothing to retry';
      return undefined;
    }
    case 'promote':
      if (f.phase !== 'baking') return `the deployment is ${f.phase}; promote applies only while a wave bakes`;
      if (f.aborting) return 'the deployment is being aborted';
      return undefined;
  }
}

/** The controls that apply now, in the order the dashboard offers them (`skip` when a host is pending). */
export function allowedControls(f: ControlFacts): Control[] {
  const pending = f.hosts.find((h) => h.state === 'pending')?.name;
  return CONTROLS.filter((c) => notApplicable(c, f, c === 'skip' ? pending : undefined) === undefined);
}

/**
 * Why each control that does not apply now is refused (the dashboard shows it beside the disabled
 * control): exactly the controls allowedControls leaves out, each with the reason a request for it
 * gets (skip: for the first host not started, or that no host is waiting to start).
 */
export function controlRefusals(f: ControlFacts): Partial<Record<Control, string>> {
  const pending = f.hosts.find((h) => h.state === 'pending')?.name;
  const out: Partial<Record<Control, string>> = {};
  for (const c of CONTROLS) {
    let why = notApplicable(c, f, c === 'skip' ? pending : undefined);
    if (c === 'skip' && pending === undefined && why?.startsWith('host: required')) why = 'no host is waiting to start: only a host not started yet can be skipped';
    if (why !== undefined) out[c] = why;
  }
  return out;
}

/** The hosts `skip` applies to now. */
export function skippableHosts(f: ControlFacts): string[] {
  return f.hosts.filter((h) => notApplicable('skip', f, h.name) === undefined).map((h) => h.name);
}

/** Why a request is malformed, naming the field; undefined when its shape is valid. */
export function controlShapeError(req: unknown): string | undefined {
  if (typeof req !== 'object' || req === null || Array.isArray(req)) return 'request must be an object';
  const r = req as Partial<Record<keyof ControlRequest, unknown>>;
  if (typeof r.requestedBy !== 'string' || r.requestedBy.trim() === '') return 'requestedBy: required (who asked)';
  if (r.requestedBy.length > AUDIT_LIMITS.actor) return `requestedBy: at most ${AUDIT_LIMITS.actor} characters (got ${r.requestedBy.length})`;
  if (!(CONTROLS as readonly unknown[]).includes(r.control)) return `control: must be one of ${CONTROLS.join(', ')} (got ${clip(JSON.stringify(r.control) ?? 'nothing', 200)})`;
  if (r.control === 'skip') {
    if (typeof r.host !== 'string' || r.host === '') return 'host: required (the host to skip)';
    if (r.host.length > AUDIT_LIMITS.hostName) return `host: at most ${AUDIT_LIMITS.hostName} characters`;
    if (r.hostState !== undefined && !(HOST_STATES as readonly unknown[]).includes(r.hostState)) return `hostState: one of ${HOST_STATES.join(', ')}`;
  } else if (r.host !== undefined) return `host: only skip names a host (got it with ${String(r.control)})`;
  else if (r.hostState !== undefined) return `hostState: only skip carries a host's state (got it with ${String(r.control)})`;
  if (r.reason !== undefined && (typeof r.reason !== 'string' || r.reason.length > 500)) return 'reason: a text of at most 500 characters';
  return undefined;
}

/** Why a control request is refused now, or undefined when it is accepted (exactly when its control applies). */
export function controlRejectReason(req: unknown, f: ControlFacts): string | undefined {
  const shape = controlShapeError(req);
  if (shape) return shape;
  const r = req as ControlRequest;
  return notApplicable(r.control, f, r.host, r.hostState);
}

/**
 * What a control request is, for the update (patched 'h-ops-audit-refusals'): `malformed` (not an
 * object, no or too long an actor, an unknown control, a bad host or reason: the validator rejects it,
 * it never reaches the history), `refused` (well formed, but its control does not apply now: the
 * handler records the refusal and fails the update with `reason`), or `accepted`.
 * `reason` is the text controlRejectReason gives, so callers see the same error either way.
 */
export type ControlVerdict = { kind: 'malformed'; reason: string } | { kind: 'refused'; reason: string; request: ControlRequest } | { kind: 'accepted'; request: ControlRequest };

export function controlVerdict(req: unknown, f: ControlFacts): ControlVerdict {
  const shape = controlShapeError(req);
  if (shape) return { kind: 'malformed', reason: shape };
  const request = req as ControlRequest;
  const reason = notApplicable(request.control, f, request.host, request.hostState);
  return reason === undefined ? { kind: 'accepted', request } : { kind: 'refused', reason, request };
}

/** The audit entry (without its time) of a refused, well-formed request: outcome `refused: <reason>`. */
export function refusalEntry(request: ControlRequest, reason: string): { actor: string; action: Control; hosts: string[]; outcome: string } {
  return { actor: request.requestedBy, action: request.control, hosts: request.host !== undefined ? [request.host] : [], outcome: `refused: ${reason}` };
}

/** The limits on recorded refusals (src/domain/audit.ts, shared with the refused signals). */
export { REFUSAL_AUDIT_LIMITS };

/** Whether this refused update gets an audit entry (refusalRecorded, REFUSAL_AUDIT_LIMITS). */
export function refusalAudited(trail: readonly AuditEntry[], request: ControlRequest, reason: string, limits: { perActor: number; total: number } = REFUSAL_AUDIT_LIMITS): boolean {
  return refusalRecorded(trail, refusalEntry(request, reason), limits);
}

/**
 * Why the update's validator rejects a request (patched 'h-ops-audit-refusals'), or undefined when it
 * goes on to the handler: a malformed request, and a refusal that would not be recorded
 * (refusalAudited). A well-formed request that does not apply passes: the handler records it and fails.
 */
export function controlValidatorReason(req: unknown, f: ControlFacts, trail: readonly AuditEntry[]): string | undefined {
  const v = controlVerdict(req, f);
  if (v.kind === 'malformed') return v.reason;
  if (v.kind === 'refused' && !refusalAudited(trail, v.request, v.reason)) return v.reason;
  return undefined;
}

/** The audit entry's action for a request (a malformed one is `invalid-request`). */
export function controlAuditAction(req: unknown): Control | 'invalid-request' {
  const c = (req as { control?: unknown } | null)?.control;
  return (CONTROLS as readonly unknown[]).includes(c) ? (c as Control) : 'invalid-request';
}

/**
 * The outcome once a retry has run: every host switched (or held) means the deployment succeeded after
 * all; otherwise undefined (the deployment stays open, its outcome as the saga computes it).
 */
export function retrySucceeded(hosts: readonly HostStatus[]): boolean {
  return hosts.every((h) => h.state === 'switched' || h.state === 'held');
}
