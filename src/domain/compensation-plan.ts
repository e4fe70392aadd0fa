/**
 * What the automatic compensation runs after a halt, in which order, and whether its steps wait for
 * each other (pure: bundled into workflow code). Tested in tests/domain/compensation-plan.test.ts and
 * tests/property/compensation-plan.property.test.ts.
 *
 * The two steps touch disjoint things and neither reads the other's result: the revert writes one
 * commit on GitHub (on top of whatever landed since), a host rollback puts one host back on the
 * generation recorded before its switch. So since issue 14 (`together`) they start at once, the host
 * rollbacks first: the hosts run the bad change now, the branch only matters for the next deployment
 * (which the fleet lock keeps out until this one closes). Deployments started before keep the old
 * order: the revert first, then the hosts.
 */
import type { FailurePolicy } from './deployment';
import { revertNeeded, rollbackCandidates, type SagaFacts } from './saga';

export type CompensationStep = 'rollback' | 'revert';

export interface CompensationPlan {
  /** The steps, in the order they are started (each at most once). */
  steps: CompensationStep[];
  /** All steps start at once (their results are joined); otherwise each waits for the one before. */
  together: boolean;
}

export function compensationPlan(
  f: Pick<SagaFacts, 'hosts' | 'order' | 'scope' | 'mergeSha' | 'revert' | 'ownMerge'>,
  policy: FailurePolicy,
  opts: { together: boolean },
): CompensationPlan {
  const revert = policy.revert !== 'off' && revertNeeded(f);
  const rollback = policy.rollbackHosts && rollbackCandidates(f).length > 0;
  if (opts.together) return { steps: [...(rollback ? ['rollback' as const] : []), ...(revert ? ['revert' as const] : [])], together: true };
  return { steps: [...(revert ? ['revert' as const] : []), ...(rollback ? ['rollback' as const] : [])], together: false };
}
