import type { FailurePolicy, RevertOutcome } from '../src/domain/deployment';
import { compensationPlan } from '../src/domain/compensation-plan';
import { revertLabel, revertSummary, rollbackSummary } from '../src/domain/saga';
import { revertMerge, rollbackHosts, type RollbackResult } from './compensation';
import type { DeploymentRecord } from './deployment-state';

/** Guards the revert running beside the host rollbacks (issue 14); deployments started before revert first. */
export const TOGETHER_PATCH = 'b-speed-compensate-together';

/**
 * The automatic compensation after a halt (called inside CancellationScope.nonCancellable): the steps
 * compensationPlan (src/domain/compensation-plan.ts) decides, started at once or one after another,
 * then one audit entry for all of them.
 */
export async function autoCompensate(d: DeploymentRecord, policy: FailurePolicy, actor: string, reason: string, together: boolean): Promise<void> {
  const plan = compensationPlan(d.facts(), policy, { together });
  let reverted: RevertOutcome | undefined;
  let result: RollbackResult = { rolledBack: [], failed: [] };
  const run = {
    revert: async () => {
      if (policy.revert !== 'off') reverted = await revertMerge(d, policy.revert, actor, reason);
    },
    rollback: async () => {
      result = await rollbackHosts(d);
    },
  };
  // Neither step throws (each keeps its failures in the status), so joining them loses nothing.
  if (plan.together) await Promise.all(plan.steps.map((s) => run[s]()));
  else for (const s of plan.steps) await run[s]();
  if (policy.revert !== 'off' || policy.rollbackHosts) {
    d.audit({ actor, action: 'auto-compensate', reverted: revertLabel(reverted), hosts: result.rolledBack, outcome: `halted: ${reason}; ${revertSummary(reverted)}; ${rollbackSummary(result)}` });
  }
}
