import { condition } from '@temporalio/workflow';
import { fleetLockWorkflowId } from '../src/domain/deployment';

/**
 * Holds a fleet for one deployment: started by the deployment as a child with the id
 * `fleet-lock-<owner>.<repo>.<branch>`, so the server itself refuses a second holder, and ended by
 * the server when the deployment closes (parent close policy TERMINATE). It does nothing else.
 */
export async function fleetLockWorkflow(_holder: { deploymentId: string }): Promise<void> {
  await condition(() => false);
}

/** The lock's id (src/domain: escaped parts, so two fleets never share one). */
export function fleetLockId(repo: { owner: string; name: string; branch: string }): string {
  return fleetLockWorkflowId(repo);
}

/** The id deployments started before the escaped ids hold (`release/1` and `release_1` shared it): for their replay, and the API's holder check. */
export function legacyFleetLockId(repo: { owner: string; name: string; branch: string }): string {
  return `fleet-lock-${repo.owner}-${repo.name}-${repo.branch.replace(/[^A-Za-z0-9._-]/g, '_')}`;
}
