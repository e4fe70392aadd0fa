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
import type { HostTimeouts } from './host-timeouts';

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
 * A wave's host records folded to one per host, and the order to unfold them in (unfoldRecords gives
 * back exactly the records, in their order: the deployment's live feed numbers the same transitions).
 * A host has one record, or two: `switching` with the recorded generation only, then its outcome
 * (which never carries `before`). Records of any other shape are not folded (undefined). Linear.
 */
export function foldRecords<R extends { name: string; state?: string; before?: unknown }>(records: readonly R[]): { records: R[]; order: number[] } | undefined {
  const at = new Map<string, number>();
  const folded: R[] = [];
  const seen: number[] = [];
  const order: number[] = [];
  for (const r of records) {
    let i = at.get(r.name);
    if (i === undefined) {
      i = folded.length;
      at.set(r.name, i);
      folded.push(r);
      seen.push(1);
    } else {
      const first = folded[i] as R;
      const onlySwitching = first.state === 'switching' && first.before !== undefined && Object.keys(first).every((k) => k === 'name' || k === 'state' || k === 'before');
      if (seen[i] !== 1 || !onlySwitching || r.before !== undefined) return undefined;
      folded[i] = { ...first, ...r };
      seen[i] = 2;
    }
    order.push(i);
  }
  return { records: folded, order };
}

/** The records foldRecords folded, in their order. Throws on an order that does not fit them. */
export function unfoldRecords<R extends { name: string; state?: string; before?: unknown }>(folded: readonly R[], order: readonly number[]): R[] {
  const count = new Array<number>(folded.length).fill(0);
  for (const i of order) {
    if (!Number.isSafeInteger(i) || i < 0 || i >= folded.length) throw new Error(`records order: ${String(i)} is not one of the ${folded.length} records`);
    count[i] = (count[i] ?? 0) + 1;
  }
  const used = new Array<number>(folded.length).fill(0);
  return order.map((i) => {
    const r = folded[i] as R;
    const n = (used[i] ?? 0) + 1;
    used[i] = n;
    if (count[i] === 1) return r;
    const { before, ...rest } = r;
    return n === 1 ? ({ name: r.name, state: 'switching', before } as unknown as R) : (rest as unknown as R);
  });
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

/**
 * The fleet's timeouts once in the input, not on every host (issue 13, bytes: ~70 B of a host's ~190 B
 * in the deployment's input; at 10,000 hosts the input was 1.8 MB against Temporal's 2 MB payload
 * limit). Hoisted only when every host has the same; a host with its own keeps them.
 */
export function hoistTimeouts(hosts: readonly HostSpec[]): { hosts: HostSpec[]; hostTimeouts?: HostTimeouts } {
  const first = hosts[0]?.timeouts;
  const same = (t: HostTimeouts | undefined): boolean =>
    t !== undefined && first !== undefined && t.buildSeconds === first.buildSeconds && t.activationSeconds === first.activationSeconds && t.healthSeconds === first.healthSeconds && Object.keys(t).length === Object.keys(first).length;
  if (!first || !hosts.every((h) => same(h.timeouts))) return { hosts: [...hosts] };
  return { hosts: hosts.map(({ timeouts: _t, ...h }) => h), hostTimeouts: { ...first } };
}

/** The input's hosts as every step takes them: the fleet's timeouts on each host that has none of its own. */
export function inputHosts(input: { hosts: readonly HostSpec[]; hostTimeouts?: HostTimeouts }): HostSpec[] {
  const t = input.hostTimeouts;
  return t ? input.hosts.map((h) => (h.timeouts ? h : { ...h, timeouts: t })) : [...input.hosts];
}
