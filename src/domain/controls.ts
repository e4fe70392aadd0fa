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
 * `controlRejectReason` is one function for the update's validator and the signal's handler, so a
 * request is accepted exactly when its control is in `allowedControls`.
 * Tested in tests/domain/controls.test.ts and tests/property/controls.property.test.ts.
 */
import { AUDIT_LIMITS, clip } from './audit';
import type { HostStatus, Phase, RevertOutcome } from './deployment';

export const CONTROLS = ['pause', 'resume', 'abort', 'skip', 'retry-failed', 'promote'] as const;
export type Control = (typeof CONTROLS)[number];

export interface ControlRequest {
  control: Control;
  /** Who asked: an identity the caller authenticated. */
  requestedBy: string;
  /** The host to skip (`skip` only). */
  host?: string;
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
function notApplicable(control: Control, f: ControlFacts, host?: string): string | undefined {
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
      if (h.state !== 'pending') return `host ${h.name} is ${h.state}; only a host not started yet can be skipped`;
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
  } else if (r.host !== undefined) return `host: only skip names a host (got it with ${String(r.control)})`;
  if (r.reason !== undefined && (typeof r.reason !== 'string' || r.reason.length > 500)) return 'reason: a text of at most 500 characters';
  return undefined;
}

/** Why a control request is refused now, or undefined when it is accepted (exactly when its control applies). */
export function controlRejectReason(req: unknown, f: ControlFacts): string | undefined {
  const shape = controlShapeError(req);
  if (shape) return shape;
  const r = req as ControlRequest;
  return notApplicable(r.control, f, r.host);
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
