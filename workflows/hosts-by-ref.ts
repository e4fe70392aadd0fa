/**
 * The workflow side of hosts by reference (issue 13, item 2, bytes; rules in src/domain/host-refs.ts):
 * a deployment started with `patched(HOSTS_BY_REF_PATCH)` gives its wave, rollback and release
 * children index ranges into its own input instead of host specs, and they read the specs through the
 * `deploymentHosts` activity (activities/fleet-snapshot.ts). Children of deployments started before
 * get the specs as before (their inputs carry no reference).
 */
import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { DeploymentStatus, HostSpec, Wave } from '../src/domain/deployment';
import { FULL_RESULT_HOSTS, rangesOf, resultRow, type FleetSnapshotActivities, type HostsRef } from '../src/domain/host-refs';
import { readStep } from './common';

export const HOSTS_BY_REF_PATCH = 'a-bytes-hosts-by-ref';

const indexes = new WeakMap<readonly HostSpec[], Map<string, number>>();

/** A reference to the named hosts of this run's input (`hosts`: the deployment's `input.hosts`). Linear. */
export function hostsRef(hosts: readonly HostSpec[], names: readonly string[]): HostsRef {
  let idx = indexes.get(hosts);
  if (!idx) {
    idx = new Map(hosts.map((h, i) => [h.name, i]));
    indexes.set(hosts, idx);
  }
  const at = (n: string): number => {
    const i = idx.get(n);
    if (i === undefined) throw new Error(`host ${n} is not in the deployment's input`);
    return i;
  };
  const info = workflowInfo();
  return { workflowId: info.workflowId, runId: info.runId, ranges: rangesOf(names.map(at)), count: names.length, ...(names.length > 0 ? { first: names[0], last: names[names.length - 1] } : {}) };
}

/** The child's hosts from the deployment's input (one activity; its result is in the child's history only). */
export function readHosts(ref: HostsRef): Promise<HostSpec[]> {
  if (ref.count === 0) return Promise.resolve([]);
  return proxyActivities<FleetSnapshotActivities>({ ...readStep, activityId: 'hosts', summary: `read ${ref.count} hosts from the deployment's input (${ref.first ?? ''}…${ref.last ?? ''})` }).deploymentHosts(ref);
}

/**
 * A wave child's hosts as its input carries them: by reference (no specs, and the wave without its
 * list of names) when `byRef`, else the specs as before.
 */
export function waveChildHosts(byRef: boolean, hosts: readonly HostSpec[], wave: Wave, slice: HostSpec[]): { wave: Wave; hosts: HostSpec[]; hostsRef?: HostsRef; compact?: true } {
  if (!byRef) return { wave, hosts: slice };
  return { wave: { ...wave, hosts: [] }, hosts: [], hostsRef: hostsRef(hosts, slice.map((h) => h.name)), compact: true };
}

/**
 * The deployment's result: as it is, or, for more than FULL_RESULT_HOSTS hosts of a deployment whose
 * children take hosts by reference, each host's row without its generations (they are in the results
 * record and the `hostsPage` query): a 10,000-host result would otherwise hold ~430 B per host.
 */
export function compactResult(byRef: boolean, status: DeploymentStatus): DeploymentStatus {
  if (!byRef || status.hosts.length <= FULL_RESULT_HOSTS) return status;
  return { ...status, hosts: status.hosts.map(resultRow) };
}
