import { CancellationScope, condition, defineSignal, defineUpdate, isCancellation, patched, setHandler } from '@temporalio/workflow';
import type { DeploymentStatus } from '../src/domain/deployment';
import { describeWindows, windowAt } from '../src/domain/windows';
import type { DeploymentRecord } from './deployment-state';

/** An operator's override of a maintenance-window wait. */
export interface StartNowRequest {
  /** Who asked: an identity the caller authenticated. */
  requestedBy: string;
  reason?: string;
  /** `deployment`: no later wave of this deployment waits for a window either. Default: this wait only. */
  scope?: 'this-wait' | 'deployment';
}
export interface StartNowOutcome {
  accepted: boolean;
  summary: string;
  status: DeploymentStatus;
}

/**
 * Start a deployment that waits for its maintenance window now, sendable with
 * `temporal workflow signal --workflow-id deploy-… --name start-now --input '{"requestedBy":"alice"}'`.
 * When the deployment is not waiting, the request is recorded in the audit trail as rejected.
 */
export const startNowSignal = defineSignal<[StartNowRequest]>('start-now');
/** The same as an update: refused with the reason when the deployment is not waiting for a window. */
export const startNowUpdate = defineUpdate<StartNowOutcome, [StartNowRequest]>('startNow');

/** Patch id: deployments started before maintenance windows existed never wait (they have no windows either). */
export const WINDOWS_PATCH = 'f-windows-maintenance';

interface Gate {
  waiting: boolean;
  /** A start-now of the deployment's own wait also starts its first wave (the next check, right after the merge). */
  carry?: boolean;
  override?: StartNowRequest;
  ignoreWindows: boolean;
}
const gates = new WeakMap<DeploymentRecord, Gate>();

/** Why a start-now request cannot be taken now; undefined when it can. */
export function startNowRejectReason(request: unknown, waiting: boolean, phase: string): string | undefined {
  const r = request as Partial<StartNowRequest> | null;
  if (typeof r !== 'object' || r === null) return 'a start-now request is an object {requestedBy, reason?, scope?}';
  if (typeof r.requestedBy !== 'string' || r.requestedBy.trim() === '' || r.requestedBy.length > 200) return 'requestedBy: who asks (1 to 200 characters)';
  if (r.reason !== undefined && (typeof r.reason !== 'string' || r.reason.length > 1000)) return 'reason: at most 1000 characters';
  if (r.scope !== undefined && r.scope !== 'this-wait' && r.scope !== 'deployment') return 'scope: "this-wait" or "deployment"';
  if (!waiting) return `not waiting for a maintenance window (phase: ${phase})`;
  return undefined;
}

/** The start-now signal and update. Registered once per deployment, whether it has windows or not (a request is then refused). */
export function registerWindowHandlers(d: DeploymentRecord): void {
  const gate: Gate = { waiting: false, ignoreWindows: false };
  gates.set(d, gate);
  const take = (request: StartNowRequest): void => {
    gate.override = request;
  };
  setHandler(startNowSignal, (request) => {
    const reason = startNowRejectReason(request, gate.waiting && gate.override === undefined, d.status.phase);
    if (reason) {
      const r = request as Partial<StartNowRequest> | null;
      d.auditRefusal({ actor: r?.requestedBy, action: 'start-now', hosts: [], outcome: `rejected: ${reason}` });
      return;
    }
    take(request);
  });
  setHandler(
    startNowUpdate,
    async (request) => {
      take(request);
      // The wait ends on this request: answer once the deployment has moved on.
      await condition(() => !gate.waiting);
      return { accepted: true, summary: d.status.window?.ended ?? 'started', status: d.status };
    },
    {
      validator: (request) => {
        const reason = startNowRejectReason(request, gate.waiting && gate.override === undefined, d.status.phase);
        if (reason) throw new Error(reason);
      },
    },
  );
}

/**
 * Keeps `what` (the deployment before its merge, or a wave) to the rollout's maintenance windows:
 * outside them, waits durably (a timer) until the next one opens or an operator starts it now. The
 * wait shows as phase `awaiting-window` with `status.window`, and in Temporal Web's current details.
 * The phase stays `awaiting-window` until the caller sets its next one. A cancellation during the wait
 * goes on up to the caller.
 */
export async function keepToWindow(d: DeploymentRecord, what: string): Promise<void> {
  const windows = d.rollout.windows;
  const gate = gates.get(d);
  if (!windows || windows.length === 0 || !gate || gate.ignoreWindows) return;
  if (gate.carry) {
    gate.carry = false;
    return;
  }
  if (!patched(WINDOWS_PATCH)) return;
  let state = windowAt(windows, Date.now());
  if (state.inside) return;
  const { status } = d;
  const iso = (t: number): string => new Date(t).toISOString();
  status.window = { for: what, waiting: true, since: iso(Date.now()), opensAt: iso(state.opensAt), closesAt: iso(state.closesAt), windows: describeWindows(windows) };
  gate.waiting = true;
  gate.override = undefined;
  d.setPhase('awaiting-window');
  try {
    // A timer fires at the opening; the loop re-reads the windows (a timer may fire a little early or late).
    while (!state.inside && (gate.override as StartNowRequest | undefined) === undefined) {
      await condition(() => gate.override !== undefined, Math.max(1000, state.opensAt - Date.now()));
      state = windowAt(windows, Date.now());
      status.window.opensAt = iso(state.opensAt);
      status.window.closesAt = iso(state.closesAt);
    }
  } catch (err) {
    if (isCancellation(err)) {
      status.window.waiting = false;
      status.window.ended = 'cancelled while waiting';
      gate.waiting = false;
    }
    throw err;
  }
  const o = gate.override as StartNowRequest | undefined;
  if (o !== undefined && !state.inside) {
    gate.ignoreWindows = o.scope === 'deployment';
    gate.carry = what === 'the deployment';
    status.window.ended = `started now by ${o.requestedBy}`;
    if (gate.ignoreWindows) status.window.ignoreWindows = true;
    await CancellationScope.nonCancellable(async () => {
      d.audit({
        actor: o.requestedBy,
        action: 'start-now',
        hosts: [],
        outcome: `started ${what} outside its maintenance window (next opens ${status.window?.opensAt})${gate.ignoreWindows ? '; later waves do not wait either' : ''}${o.reason ? `: ${o.reason}` : ''}`,
      });
    });
  } else {
    status.window.ended = 'window opened';
  }
  status.window.waiting = false;
  gate.waiting = false;
  gate.override = undefined;
  // The caller moves on to its next phase (merging, deploying).
}
