import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { DeploymentStatus, RollbackPreview, RollbackRequest } from '../src/domain/deployment';
import type { PreviewOptions } from '../src/domain/saga';
import type { ProgressPage } from '../src/domain/progress';
import type { Control, ControlRequest, ControlState } from '../src/domain/controls';

/** The deployment's state: phase, each host's state and generations, revert outcome, audit trail. */
export const statusQuery = defineQuery<DeploymentStatus>('status');
/**
 * Every host and phase transition after the cursor (a sequence number; 0: from the first; null: none,
 * the status only), the latest cursor and the status as of it. The workflow keeps the last PROGRESS_RING_SIZE transitions: a
 * reader whose cursor is older (`cursor < oldest - 1`) starts over from the status.
 */
export const progressSinceQuery = defineQuery<ProgressPage, [number | null]>('progressSince');
/**
 * What a manual rollback would touch, for the confirmation dialog; `{ limit }`: its first hosts only,
 * with `hostCount` (workers older than the argument ignore it and answer every host).
 */
export const rollbackPreviewQuery = defineQuery<RollbackPreview, [PreviewOptions?]>('rollbackPreview');
/**
 * Fire-and-forget manual rollback, sendable with
 * `temporal workflow signal --workflow-id deploy-… --name rollback --input '{"action":"revert-and-rollback","requestedBy":"alice"}'`.
 * A request that no longer applies, or is malformed (unknown action, a `requestedBy` over 200
 * characters), is recorded in the audit trail as rejected and changes nothing else.
 */
export const rollbackSignal = defineSignal<[RollbackRequest]>('rollback');
/** The same request as an update: validated first, and it returns the outcome once carried out. */
export const rollbackUpdate = defineUpdate<RollbackOutcome, [RollbackRequest]>('rollbackAndWait');

export interface RollbackOutcome {
  action: RollbackRequest['action'];
  accepted: boolean;
  summary: string;
  status: DeploymentStatus;
}

/**
 * Operator controls (src/domain/controls.ts): pause, resume, abort, skip a host, retry-failed, promote.
 * Fire-and-forget, sendable with
 * `temporal workflow signal --workflow-id deploy-… --name control --input '{"control":"pause","requestedBy":"alice"}'`;
 * a request that does not apply, or is malformed, is recorded in the audit trail as rejected and changes nothing else.
 */
export const controlSignal = defineSignal<[ControlRequest]>('control');
/**
 * The same request as an update: the validator refuses what does not apply, with the reason. It returns
 * once the control took effect (a retry: once the retried hosts have been deployed).
 */
export const controlUpdate = defineUpdate<ControlOutcome, [ControlRequest]>('controlAndWait');
/** Which controls apply now, the hosts that can be skipped, and the controls' state. */
export const controlsQuery = defineQuery<ControlsView>('controls');

export interface ControlOutcome {
  control: ControlRequest['control'];
  accepted: boolean;
  summary: string;
  status: DeploymentStatus;
}

export interface ControlsView {
  allowed: Control[];
  skippable: string[];
  state: ControlState;
  /** Why each control not in `allowed` is refused now (absent from deployments whose workflow predates it). */
  refused?: Partial<Record<Control, string>>;
}

/** What the deployment tells its running wave child: the child's pool starts no host while paused or halted, and drops skipped hosts. */
export interface WaveControl {
  paused: boolean;
  halted: boolean;
  skipped: string[];
}
export const waveControlSignal = defineSignal<[WaveControl]>('waveControl');
