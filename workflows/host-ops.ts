/**
 * Per-host work of the deployment itself (rolling hosts back, releasing their GC roots at the close)
 * in child workflows once it is more than a few hosts (issue 13, item 2): three or more history
 * events per host in the deployment's own history would pass Temporal's limits on a large fleet. A
 * child takes at most hostOpsPerChild hosts (of one or several waves, each wave's at its own
 * maxParallel, in order); the deployment runs them in turn and applies each one's results. Up to
 * INLINE_HOST_OPS hosts still run in the deployment itself, as before.
 */
import { executeChild, workflowInfo } from '@temporalio/workflow';
import type { Generation, HostSpec } from '../src/domain/deployment';
import { failureOf, hostStepFor, pool, stepper } from './common';

/** At most this many hosts are rolled back or released by the deployment itself. */
export const INLINE_HOST_OPS = 50;
/**
 * Hosts per rollback or release child: ~6 events per host rolled back, ~4 per host released, so a
 * child stays well under the 10,240-event warning; a rollout's smaller `hostsPerChild` wins.
 */
export function hostOpsPerChild(hostsPerChild: number | undefined): number {
  return Math.max(1, Math.min(1000, hostsPerChild ?? 1000));
}

export interface HostOpsInput {
  deploymentId: string;
  /** The deployment's run (its switch markers are named for it). */
  deploymentRunId: string;
  op: 'rollback' | 'release';
  /** In turn, each group's hosts at most `maxParallel` at once (a rollback: one group per wave, last wave first). */
  groups: HostOpsGroup[];
}

export interface HostOpsGroup {
  maxParallel: number;
  hosts: Array<{ host: HostSpec; to?: Generation }>;
}

export interface HostOpResult {
  name: string;
  /** Rollback: where the host landed. */
  now?: Generation;
  error?: string;
}

export interface HostOpsResult {
  results: HostOpResult[];
}

/** Rolls back or releases the given hosts group by group, in the order given; the results in that order. */
export async function hostOpsWorkflow(input: HostOpsInput): Promise<HostOpsResult> {
  const results: HostOpResult[] = [];
  for (const g of input.groups) results.push(...(await runGroup(input, g)));
  return { results };
}

async function runGroup(input: HostOpsInput, group: HostOpsGroup): Promise<HostOpResult[]> {
  const step = stepper();
  const results: HostOpResult[] = new Array<HostOpResult>(group.hosts.length);
  const indexed = group.hosts.map((h, i) => ({ ...h, i }));
  await pool(indexed, group.maxParallel, async ({ host, to, i }) => {
    try {
      if (input.op === 'rollback') {
        const target = to as Generation;
        const now = await step(hostStepFor('rollback', host), `${host.name}/rollback`, `roll back ${host.name} to generation ${target.number}`).rollbackHost({ deploymentId: input.deploymentId, host, to: target });
        results[i] = { name: host.name, now };
      } else {
        await step(hostStepFor('read', host), `${host.name}/release`, `remove the deployment's GC roots on ${host.name}`).releaseHost({ deploymentId: input.deploymentId, deploymentRunId: input.deploymentRunId, host });
        results[i] = { name: host.name };
      }
    } catch (err) {
      results[i] = { name: host.name, error: failureOf(err).message };
    }
  });
  return results;
}

/** The groups cut into children of at most `perChild` hosts each, in order (a group may span two). */
export function chunkGroups(groups: readonly HostOpsGroup[], perChild: number): HostOpsGroup[][] {
  const out: HostOpsGroup[][] = [];
  let cur: HostOpsGroup[] = [];
  let n = 0;
  for (const g of groups) {
    for (let at = 0; at < g.hosts.length; ) {
      const take = Math.min(perChild - n, g.hosts.length - at);
      cur.push({ maxParallel: g.maxParallel, hosts: g.hosts.slice(at, at + take) });
      at += take;
      n += take;
      if (n === perChild) {
        out.push(cur);
        cur = [];
        n = 0;
      }
    }
  }
  if (n > 0) out.push(cur);
  return out;
}

/** Runs the groups through hostOpsWorkflow children of at most `perChild` hosts, in turn. */
export async function hostOpsInChildren(
  idPrefix: string,
  base: Omit<HostOpsInput, 'groups'>,
  groups: readonly HostOpsGroup[],
  perChild: number,
  onResults: (results: HostOpResult[]) => void,
): Promise<void> {
  for (const [k, part] of chunkGroups(groups, perChild).entries()) {
    try {
      const r = await executeChild(hostOpsWorkflow, { workflowId: `${idPrefix}-${k + 1}`, args: [{ ...base, groups: part }] });
      onResults(r.results);
    } catch (err) {
      const error = `the ${base.op} workflow ended without its result: ${failureOf(err).message}`;
      onResults(part.flatMap((g) => g.hosts.map((h) => ({ name: h.host.name, error }))));
    }
  }
}

/** The root run's id (the deployment's), for switch markers. */
export function deploymentRunId(): string {
  return workflowInfo().root?.runId ?? workflowInfo().runId;
}
