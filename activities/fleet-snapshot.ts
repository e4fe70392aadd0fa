/**
 * The hosts of a deployment's child, read by reference (issue 13, item 2, bytes): the deployment's
 * start event holds its input, the fleet as it was started; a child's input names index ranges into
 * it (src/domain/host-refs.ts) and this activity returns those hosts. The start event of a run is
 * immutable in Temporal's history, so nothing outside the deployment can change what a child deploys
 * or rolls back. Read through the worker's own client (the activity context's), the first event only,
 * and kept per run in a small cache (a wave's children read the same input in turn).
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { decodeFromPayloadsAtIndex } from '@temporalio/common/lib/internal-non-workflow';
import { FailureType } from '../src/domain/activities';
import type { HostSpec } from '../src/domain/deployment';
import { hostsByRef, inputHosts, type FleetSnapshotActivities } from '../src/domain/host-refs';
import type { HostTimeouts } from '../src/domain/host-timeouts';

export type { FleetSnapshotActivities };

/** Deployment inputs kept per worker (each up to the fleet's size). */
const CACHED_RUNS = 4;

export function createFleetSnapshotActivities(): FleetSnapshotActivities {
  const cache = new Map<string, Promise<HostSpec[]>>();
  const startedHosts = async (workflowId: string, runId: string): Promise<HostSpec[]> => {
    const client = Context.current().client;
    const page = await client.workflowService.getWorkflowExecutionHistory({ namespace: client.options.namespace, execution: { workflowId, runId }, maximumPageSize: 1 });
    const started = page.history?.events?.[0]?.workflowExecutionStartedEventAttributes;
    if (!started) throw ApplicationFailure.nonRetryable(`hosts reference: ${workflowId} (run ${runId}) has no start event`, FailureType.InvalidInput);
    const input = await decodeFromPayloadsAtIndex<{ hosts?: unknown; hostTimeouts?: HostTimeouts }>(client.options.loadedDataConverter, 0, started.input?.payloads);
    if (!Array.isArray(input?.hosts)) throw ApplicationFailure.nonRetryable(`hosts reference: the input of ${workflowId} (run ${runId}) has no hosts`, FailureType.InvalidInput);
    // As the deployment takes them: its shared timeouts on every host.
    return inputHosts({ hosts: input.hosts as HostSpec[], ...(input.hostTimeouts ? { hostTimeouts: input.hostTimeouts } : {}) });
  };
  return {
    async deploymentHosts(ref) {
      let hosts = cache.get(ref.runId);
      if (!hosts) {
        hosts = startedHosts(ref.workflowId, ref.runId);
        cache.set(ref.runId, hosts);
        while (cache.size > CACHED_RUNS) cache.delete(cache.keys().next().value as string);
        // A failed read is not kept: the retry reads again.
        hosts.catch(() => cache.delete(ref.runId));
      }
      const all = await hosts;
      try {
        return hostsByRef(ref, all);
      } catch (err) {
        throw ApplicationFailure.nonRetryable((err as Error).message, FailureType.InvalidInput);
      }
    },
  };
}
