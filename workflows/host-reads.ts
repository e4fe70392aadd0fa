import { proxyLocalActivities } from '@temporalio/workflow';
import type { DeployActivities } from '../src/domain/activities';
import type { HostSpec } from '../src/domain/deployment';
import { hostStepFor } from './common';

/**
 * Issue 14: a host's two short reads around its switch (record the generation, verify the switch) run
 * as local activities, on the worker that runs the wave, inside the workflow task: one workflow task per
 * host instead of three. Both are idempotent reads (record also pins the recorded generation, which is
 * safe to repeat), so a worker that dies during one leaves the workflow task to time out and the next
 * worker runs the read again. The record is still in the history (a marker) before the switch is
 * scheduled: the switch is a command of the same task's completion. The switch stays a normal activity
 * with its heartbeats. Deployments started before keep the reads as activities (patched).
 */
export const LOCAL_READS_PATCH = 'b-speed-local-reads';

/** New wave children run record and verify as ordinary activities (local ones replay out of order when concurrent: workflows/wave.ts). */
export const ORDERED_READS_PATCH = 'ordered-reads';

/** A local read with the host's read timeouts and retries; attempts past 10 s go through a timer. */
export function localRead(host: Pick<HostSpec, 'timeouts'>, summary: string): DeployActivities {
  const { startToCloseTimeout, retry } = hostStepFor('read', host);
  return proxyLocalActivities<DeployActivities>({ ...(startToCloseTimeout !== undefined ? { startToCloseTimeout } : {}), ...(retry ? { retry } : {}), localRetryThreshold: '10 seconds', summary });
}
