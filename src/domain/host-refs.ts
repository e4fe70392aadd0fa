/**
 * Hosts by reference (issue 13, item 2, bytes): a deployment's children take their hosts as index
 * ranges into the deployment's own input (the fleet as the deployment was started with it, in its
 * first history event: nothing outside can rewrite it), not as copies of the host specs; and give
 * back only what the deployment needs. Measured at 100 hosts before this, a deployment's history held
 * ~2.2 KB per host, ~650 B of it the host specs copied into its children's inputs (BENCHMARKS.md).
 * Pure functions: the workflows (workflows/hosts-by-ref.ts) and the activity that reads the
 * deployment's input (activities/fleet-snapshot.ts) share them.
 */
import type { HostSpec, HostStatus } from './deployment';

/** Half-open ranges `[from, to)` of indexes into the deployment's `input.hosts`, in the order to take them. */
export type IndexRanges = Array<[number, number]>;

/** Where a child reads its hosts: the deployment's run (its start event) and the ranges of its input's hosts. */
export interface HostsRef {
  workflowId: string;
  runId: string;
  ranges: IndexRanges;
  /** How many hosts the ranges give, and the first and last host's name: a check that the right input was read. */
  count: number;
  first?: string;
  last?: string;
}

export interface FleetSnapshotActivities {
  /** The hosts `ref` names, from the deployment's own input (its start event). Changes nothing. */
  deploymentHosts(ref: HostsRef): Promise<HostSpec[]>;
}

/** Consecutive indexes folded into ranges, order kept: `[3,4,5,9,2]` → `[[3,6],[9,10],[2,3]]`. Linear. */
export function rangesOf(indexes: readonly number[]): IndexRanges {
  const out: IndexRanges = [];
  for (const i of indexes) {
    const last = out[out.length - 1];
    if (last && last[1] === i) last[1] = i + 1;
    else out.push([i, i + 1]);
  }
  return out;
}

/** The indexes the ranges give, in order. */
export function indexesOf(ranges: IndexRanges): number[] {
  const out: number[] = [];
  for (const [from, to] of ranges) for (let i = from; i < to; i++) out.push(i);
  return out;
}

/** Why the ranges cannot be read from `hosts` (undefined: they can), naming the field. */
export function refProblem(ref: HostsRef, hosts: readonly HostSpec[]): string | undefined {
  let count = 0;
  for (const [k, r] of ref.ranges.entries()) {
    if (!Array.isArray(r) || r.length !== 2) return `ranges[${k}]: a pair [from, to)`;
    const [from, to] = r;
    if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0 || to <= from || to > hosts.length) return `ranges[${k}]: [${String(from)}, ${String(to)}) is not within the deployment's ${hosts.length} hosts`;
    count += to - from;
  }
  if (count !== ref.count) return `count: the ranges give ${count} hosts, the reference says ${ref.count}`;
  return undefined;
}

/** The hosts the reference names, checked (count, first and last name); throws naming the field. */
export function hostsByRef(ref: HostsRef, hosts: readonly HostSpec[]): HostSpec[] {
  const problem = refProblem(ref, hosts);
  if (problem) throw new Error(`hosts reference: ${problem}`);
  const out: HostSpec[] = [];
  for (const [from, to] of ref.ranges) for (let i = from; i < to; i++) out.push(hosts[i] as HostSpec);
  if (ref.first !== undefined && out[0]?.name !== ref.first) throw new Error(`hosts reference: first: expected ${ref.first}, the deployment's input has ${out[0]?.name ?? 'none'} there`);
  if (ref.last !== undefined && out[out.length - 1]?.name !== ref.last) throw new Error(`hosts reference: last: expected ${ref.last}, the deployment's input has ${out[out.length - 1]?.name ?? 'none'} there`);
  return out;
}

/**
 * A wave's host records folded to one per host (its fields merged in the order they came), in the
 * order each host was first recorded. Applying the folded records leaves every host as applying all
 * of them would: a later record only sets fields, never clears one. Linear.
 */
export function foldRecords<R extends { name: string }>(records: readonly R[]): R[] {
  const byName = new Map<string, R>();
  for (const r of records) byName.set(r.name, { ...byName.get(r.name), ...r } as R);
  return [...byName.values()];
}

/** Above this many hosts a deployment's result carries each host's row without its generations. */
export const FULL_RESULT_HOSTS = 200;

/**
 * A host's row in the result of a large deployment: what the dashboard lists (name, state, wave, why),
 * without the generations (before, after, now, target), which are in its results record (the audit
 * store) and in the `hostsPage` query.
 */
export function resultRow(h: HostStatus): HostStatus {
  const { before: _b, after: _a, now: _n, target: _t, ...row } = h;
  return row;
}
