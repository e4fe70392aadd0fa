import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { DeploymentStatus, RollbackPreview, RollbackRequest } from '../src/domain/deployment';
import type { ProgressPage } from '../src/domain/progress';

/** The deployment's state: phase, each host's state and generations, revert outcome, audit trail. */
export const statusQuery = defineQuery<DeploymentStatus>('status');
/**
 * Every host and phase transition after the cursor (a sequence number; 0: from the first; null: none,
 * the status only), the latest cursor and the status as of it. The workflow keeps the last PROGRESS_RING_SIZE transitions: a
 * reader whose cursor is older (`cursor < oldest - 1`) starts over from the status.
 */
export const progressSinceQuery = defineQuery<ProgressPage, [number | null]>('progressSince');
/** What a manual rollback would touch, for the confirmation dialog. */
export const rollbackPreviewQuery = defineQuery<RollbackPreview>('rollbackPreview');
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
