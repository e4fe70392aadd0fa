/**
 * The outcome of a failed deployment, from what is known about it (pure; bundled into workflow code).
 * An outcome never says "rolled back" while something the deployment meant to undo is still in place:
 * a host left on another generation than its recorded one, or a merge whose revert failed.
 */
import type { DeploymentOutcome, HostState, RevertOutcome } from './deployment';

export interface FailedDeploymentFacts {
  /** Every host's state now. */
  hosts: ReadonlyArray<{ state: HostState }>;
  /** Hosts that a rollback would still touch (switched, or failed after their profile moved). */
  rollbackCandidates: number;
  /** The last revert attempt, when one was made. */
  revert?: RevertOutcome;
}

/**
 * - `failed-revert-failed`: the revert was attempted and failed (a conflict, a refusal): the merge is
 *   still on the branch, whatever the hosts did;
 * - `failed-rollback-incomplete`: a rollback ran, and a host is still not back (its rollback failed,
 *   or it is still to be rolled back);
 * - `failed-not-rolled-back`: hosts are still to be rolled back and none was;
 * - `failed-rolled-back`: nothing left to undo.
 */
export function failedOutcome(f: FailedDeploymentFacts): DeploymentOutcome {
  if (f.revert?.kind === 'failed') return 'failed-revert-failed';
  const rollbackFailed = f.hosts.some((h) => h.state === 'rollback-failed');
  if (rollbackFailed || f.rollbackCandidates > 0) {
    return rollbackFailed || f.hosts.some((h) => h.state === 'rolled-back') ? 'failed-rollback-incomplete' : 'failed-not-rolled-back';
  }
  return 'failed-rolled-back';
}
