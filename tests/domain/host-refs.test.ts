/** Hosts by reference (src/domain/host-refs.ts): ranges, their checks, folded records, result rows. */
import type { HostSpec, HostStatus } from '../../src/domain/deployment';
import { foldRecords, hoistTimeouts, hostsByRef, inputHosts, indexesOf, rangesOf, refProblem, resultRow, unfoldRecords, type HostsRef } from '../../src/domain/host-refs';

const spec = (name: string): HostSpec => ({ name, address: '127.0.0.1', port: 22, user: 'root', kind: 'nixos', attr: name });
const fleet = ['a', 'b', 'c', 'd', 'e'].map(spec);
const ref = (ranges: Array<[number, number]>, extra: Partial<HostsRef> = {}): HostsRef => ({ workflowId: 'w', runId: 'r', ranges, count: ranges.reduce((n, [f, t]) => n + t - f, 0), ...extra });

test('when indexes run on, then they fold into ranges in their order', () => {
  expect(rangesOf([])).toEqual([]);
  expect(rangesOf([0, 1, 2, 3, 4])).toEqual([[0, 5]]);
  expect(rangesOf([3, 4, 5, 9, 2])).toEqual([
    [3, 6],
    [9, 10],
    [2, 3],
  ]);
  expect(indexesOf([[3, 6], [9, 10], [2, 3]])).toEqual([3, 4, 5, 9, 2]);
});

test('when a reference names hosts of the input, then those hosts come back in order', () => {
  expect(hostsByRef(ref([[3, 5], [0, 1]], { first: 'd', last: 'a' }), fleet).map((h) => h.name)).toEqual(['d', 'e', 'a']);
});

test('when a reference does not fit the input, then it is refused naming the field', () => {
  expect(refProblem(ref([[4, 6]]), fleet)).toMatch(/^ranges\[0\]: \[4, 6\) is not within the deployment's 5 hosts/);
  expect(refProblem(ref([[2, 2]]), fleet)).toMatch(/^ranges\[0\]/);
  expect(refProblem(ref([[-1, 1]]), fleet)).toMatch(/^ranges\[0\]/);
  expect(refProblem({ ...ref([[0, 2]]), count: 3 }, fleet)).toMatch(/^count: the ranges give 2 hosts, the reference says 3/);
  expect(() => hostsByRef(ref([[0, 2]], { first: 'b' }), fleet)).toThrow(/first: expected b, the deployment's input has a there/);
  expect(() => hostsByRef(ref([[0, 2]], { last: 'a' }), fleet)).toThrow(/last: expected a/);
  expect(() => hostsByRef(ref([[0, 9]]), fleet)).toThrow(/hosts reference: ranges\[0\]/);
});

test("when a wave's records are folded, then each host has one record with every field, and the order unfolds them as they were", () => {
  const before = { number: 2, storePath: '/nix/store/b' };
  const after = { number: 3, storePath: '/nix/store/a' };
  const records = [
    { name: 'x', state: 'switching' as const, before },
    { name: 'y', state: 'switching' as const, before },
    { name: 'y', state: 'failed' as const, error: 'boom', profileMoved: true },
    { name: 'x', state: 'switched' as const, after },
  ];
  const folded = foldRecords(records);
  expect(folded?.records).toEqual([
    { name: 'x', state: 'switched', before, after },
    { name: 'y', state: 'failed', before, error: 'boom', profileMoved: true },
  ]);
  expect(folded?.order).toEqual([0, 1, 1, 0]);
  expect(unfoldRecords(folded!.records, folded!.order)).toEqual(records);
});

test("when a large deployment's row goes into its result, then it keeps what the dashboard lists and leaves the generations out", () => {
  const g = { number: 2, storePath: '/nix/store/b' };
  const h: HostStatus = { name: 'x', kind: 'nixos', state: 'rolled-back', wave: 'w1', before: g, after: g, now: g, target: '/nix/store/t', error: 'e', warning: 'w' };
  expect(resultRow(h)).toEqual({ name: 'x', kind: 'nixos', state: 'rolled-back', wave: 'w1', error: 'e', warning: 'w' });
});

describe('hoistTimeouts / inputHosts (the fleet\'s timeouts once in the input)', () => {
  const t = { buildSeconds: 3600, activationSeconds: 600, healthSeconds: 300 };
  const host = (name: string, timeouts?: typeof t): HostSpec => ({ name, address: '10.0.0.1', port: 22, user: 'root', kind: 'nixos', attr: name, ...(timeouts ? { timeouts } : {}) });

  test('when every host has the same timeouts, then they are hoisted once and inputHosts gives every host back exactly', () => {
    const hosts = [host('a', t), host('b', { ...t }), host('c', t)];
    const h = hoistTimeouts(hosts);
    expect(h.hostTimeouts).toEqual(t);
    expect(h.hosts.every((x) => !('timeouts' in x))).toBe(true);
    expect(JSON.stringify(h).length).toBeLessThan(JSON.stringify({ hosts }).length);
    expect(inputHosts(h)).toEqual(hosts);
  });

  test('when a host has timeouts of its own (or none), then nothing is hoisted and the hosts are kept as they are', () => {
    const mixed = [host('a', t), host('b', { ...t, healthSeconds: 10 })];
    expect(hoistTimeouts(mixed)).toEqual({ hosts: mixed });
    const some = [host('a', t), host('b')];
    expect(hoistTimeouts(some)).toEqual({ hosts: some });
    expect(hoistTimeouts([])).toEqual({ hosts: [] });
  });

  test('when an input from before the hoist carries timeouts per host, then inputHosts leaves them, and a host\'s own timeouts win over the shared ones', () => {
    const old = [host('a', t), host('b')];
    expect(inputHosts({ hosts: old })).toEqual(old);
    const own = { ...t, buildSeconds: 60 };
    expect(inputHosts({ hosts: [host('a', own), host('b')], hostTimeouts: t })).toEqual([host('a', own), host('b', t)]);
  });
});
