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
import type { HostsRef } from '../src/domain/host-refs';
import { failureOf, hostStepFor, pool, stepper } from './common';
import { hostsRef, readHosts } from './hosts-by-ref';

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
  /**
   * The hosts by reference into the deployment's input, group after group (workflows/hosts-by-ref.ts):
   * then each group's `hosts` is empty and its `count` and `to` say how many and where to.
   */
  hostsRef?: HostsRef;
  /** The result lists only hosts that failed, and a rollback's `now` only where it is not the `to` given. */
  compact?: true;
}

export interface HostOpsGroup {
  maxParallel: number;
  hosts: Array<{ host: HostSpec; to?: Generation }>;
  /** By reference: how many of `hostsRef`'s hosts are this group's. */
  count?: number;
  /** By reference, a rollback: each host's recorded generation, in order. */
  to?: Generation[];
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
  const groups = input.hostsRef ? withHosts(input.groups, await readHosts(input.hostsRef)) : input.groups;
  const results: HostOpResult[] = [];
  for (const g of groups) results.push(...(await runGroup(input, g)));
  if (!input.compact) return { results };
  const to = new Map(groups.flatMap((g) => g.hosts.map((h) => [h.host.name, h.to] as const)));
  return { results: results.filter((r) => r.error !== undefined || (input.op === 'rollback' && !sameGeneration(r.now, to.get(r.name)))) };
}

/** Groups by reference with their hosts filled in from the deployment's input, in order. */
function withHosts(groups: readonly HostOpsGroup[], specs: readonly HostSpec[]): HostOpsGroup[] {
  let at = 0;
  return groups.map((g) => {
    const n = g.count ?? 0;
    const hosts = specs.slice(at, at + n).map((host, k) => ({ host, ...(g.to?.[k] ? { to: g.to[k] } : {}) }));
    at += n;
    return { maxParallel: g.maxParallel, hosts };
  });
}

const sameGeneration = (a: Generation | undefined, b: Generation | undefined): boolean => a !== undefined && b !== undefined && a.number === b.number && a.storePath === b.storePath;

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

/**
 * Runs the groups through hostOpsWorkflow children of at most `perChild` hosts, in turn. With
 * `byRef` (the deployment's `input.hosts`), each child takes its hosts by reference and answers
 * compactly; its results are expanded here (a host not listed succeeded, a rollback landing on its `to`).
 */
export async function hostOpsInChildren(
  idPrefix: string,
  base: Omit<HostOpsInput, 'groups'>,
  groups: readonly HostOpsGroup[],
  perChild: number,
  onResults: (results: HostOpResult[]) => void,
  byRef?: readonly HostSpec[],
): Promise<void> {
  for (const [k, part] of chunkGroups(groups, perChild).entries()) {
    try {
      const args: HostOpsInput = byRef ? { ...base, ...byReference(byRef, base.op, part) } : { ...base, groups: part };
      const r = await executeChild(hostOpsWorkflow, { workflowId: `${idPrefix}-${k + 1}`, args: [args] });
      onResults(byRef ? expandResults(base.op, part, r.results) : r.results);
    } catch (err) {
      const error = `the ${base.op} workflow ended without its result: ${failureOf(err).message}`;
      onResults(part.flatMap((g) => g.hosts.map((h) => ({ name: h.host.name, error }))));
    }
  }
}

/** A child's groups by reference into `hosts` (the deployment's input). */
function byReference(hosts: readonly HostSpec[], op: HostOpsInput['op'], part: HostOpsGroup[]): Pick<HostOpsInput, 'groups' | 'hostsRef' | 'compact'> {
  return {
    groups: part.map((g) => ({ maxParallel: g.maxParallel, hosts: [], count: g.hosts.length, ...(op === 'rollback' ? { to: g.hosts.map((h) => h.to as Generation) } : {}) })),
    hostsRef: hostsRef(hosts, part.flatMap((g) => g.hosts.map((h) => h.host.name))),
    compact: true,
  };
}

/** A compact result as the full one: every host of `part` in order, those not listed succeeded (a rollback on its `to`). */
function expandResults(op: HostOpsInput['op'], part: HostOpsGroup[], listed: HostOpResult[]): HostOpResult[] {
  const byName = new Map(listed.map((r) => [r.name, r]));
  return part.flatMap((g) => g.hosts.map((h) => byName.get(h.host.name) ?? { name: h.host.name, ...(op === 'rollback' && h.to ? { now: h.to } : {}) }));
}

/** The root run's id (the deployment's), for switch markers. */
export function deploymentRunId(): string {
  return workflowInfo().root?.runId ?? workflowInfo().runId;
}
