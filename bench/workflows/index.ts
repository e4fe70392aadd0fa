/**
 * The workflow bundle the bench worker runs: the product's workflows unchanged, plus two bench-only
 * workflows over the product's own activities (nothing here is part of the product):
 *  - benchRollbackMany: the rollbackHost activity for N hosts, one after another or all at once;
 *  - benchDeployHosts: the product's per-host sequence (record → switch → verify) in variants, to
 *    measure what the orchestration of one host costs and what would make it cheaper.
 */
import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { LocalActivityOptions } from '@temporalio/workflow';
import type { DeployActivities } from '../../src/domain/activities';
import type { Generation, HostSpec } from '../../src/domain/deployment';
// The product's retry policies, not copies: the host-step options and the one non-retryable list.
import { hostStep, NON_RETRYABLE } from '../../workflows/common';

export * from '../../workflows';

const localRead: LocalActivityOptions = {
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 5, nonRetryableErrorTypes: NON_RETRYABLE },
};

export interface BenchRollbackInput {
  deploymentId: string;
  hosts: Array<{ host: HostSpec; to: Generation }>;
  parallel: boolean;
}

export async function benchRollbackMany(input: BenchRollbackInput): Promise<number> {
  const act = proxyActivities<DeployActivities>(hostStep);
  const one = (h: { host: HostSpec; to: Generation }) => act.rollbackHost({ deploymentId: input.deploymentId, host: h.host, to: h.to });
  if (input.parallel) {
    await Promise.all(input.hosts.map(one));
  } else {
    for (const h of input.hosts) await one(h);
  }
  return input.hosts.length;
}

export type DeployVariant =
  /** exactly the product's sequence: three activities per host */
  | 'three-activities'
  /** record and verify as local activities (no task-queue round trip), switch as an activity */
  | 'local-reads'
  /** record + switch only: switchTo already re-reads and checks the host after switching */
  | 'no-separate-verify';

export interface BenchDeployInput {
  deploymentId: string;
  hosts: HostSpec[];
  /** pinned flake reference without #attr */
  flakeRef: string;
  variant: DeployVariant;
}

export async function benchDeployHosts(input: BenchDeployInput): Promise<number> {
  const act = proxyActivities<DeployActivities>(hostStep);
  const reads = input.variant === 'local-reads' ? proxyLocalActivities<DeployActivities>(localRead) : act;
  for (const host of input.hosts) {
    const before = await reads.recordGeneration({ deploymentId: input.deploymentId, host });
    const after = await act.switchHost({ deploymentId: input.deploymentId, host, flakeRef: `${input.flakeRef}#${host.attr}`, before });
    if (input.variant !== 'no-separate-verify') await reads.verifyHost({ deploymentId: input.deploymentId, host, expected: after });
  }
  return input.hosts.length;
}
