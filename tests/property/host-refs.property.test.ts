/**
 * Hosts by reference: any selection of a fleet's hosts, folded into ranges and read back from the
 * fleet, is that selection in its order; a wave's folded records unfold to exactly its records; the
 * growth fit recovers a line it was given.
 */
import fc from 'fast-check';
import type { HostSpec } from '../../src/domain/deployment';
import { foldRecords, hostsByRef, indexesOf, rangesOf, unfoldRecords } from '../../src/domain/host-refs';
import { fitLine, largestUnder } from '../../testkit/simfleet/growth';

const spec = (i: number): HostSpec => ({ name: `h${i}`, address: '127.0.0.1', port: 22, user: 'root', kind: 'nixos', attr: `h${i}` });

test('a selection read back through its ranges is the selection, and ranges never outnumber its hosts', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 300 }).chain((n) => fc.tuple(fc.constant(n), fc.uniqueArray(fc.integer({ min: 0, max: n - 1 }), { maxLength: n }))), ([n, picked]) => {
      const fleet = Array.from({ length: n }, (_, i) => spec(i));
      const ranges = rangesOf(picked);
      expect(indexesOf(ranges)).toEqual(picked);
      expect(ranges.length).toBeLessThanOrEqual(picked.length);
      const names = picked.map((i) => `h${i}`);
      const got = hostsByRef({ workflowId: 'w', runId: 'r', ranges, count: picked.length, ...(names.length ? { first: names[0], last: names[names.length - 1] } : {}) }, fleet);
      expect(got.map((h) => h.name)).toEqual(names);
    }),
  );
  // A contiguous slice, as a wave's child takes it: one range, whatever its length.
  expect(rangesOf(Array.from({ length: 10_000 }, (_, i) => i + 5))).toEqual([[5, 10_005]]);
});

test('folded records unfold to exactly the records, in their order; records of another shape are not folded', () => {
  const gen = fc.record({ number: fc.integer({ min: 1, max: 99 }), storePath: fc.constantFrom('/nix/store/a', '/nix/store/b') });
  // What a wave records per host: its outcome alone, or `switching` with the recorded generation then its outcome.
  const outcome = (name: string) => fc.record({ name: fc.constant(name), state: fc.constantFrom('switched', 'failed', 'not-attempted'), error: fc.option(fc.string(), { nil: undefined }) }).map((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)) as { name: string; state: string; error?: string });
  const host = (name: string) => fc.oneof(outcome(name).map((o) => [o]), fc.tuple(gen, outcome(name)).map(([before, o]) => [{ name, state: 'switching', before }, o]), gen.map((before) => [{ name, state: 'switching', before }]));
  const wave = fc.uniqueArray(fc.constantFrom('a', 'b', 'c', 'd', 'e'), { maxLength: 5 }).chain((names) => fc.tuple(...names.map(host))).chain((perHost) => {
    // Interleave the hosts' records as a pool would, each host's own in its order.
    const all = perHost.flat();
    return fc.shuffledSubarray(all.map((_, i) => i), { minLength: all.length, maxLength: all.length }).map((perm) => {
      const queues = perHost.map((q) => [...q]);
      const owner = perHost.flatMap((q, h) => q.map(() => h));
      return perm.map((k) => queues[owner[k] as number]!.shift()!);
    });
  });
  fc.assert(
    fc.property(wave, (records) => {
      const folded = foldRecords(records);
      expect(folded).toBeDefined();
      expect(folded!.records.length).toBe(new Set(records.map((r) => r.name)).size);
      expect(unfoldRecords(folded!.records, folded!.order)).toEqual(records);
    }),
  );
  // A second record after an outcome, or a first record that is not just `switching` with `before`: not folded.
  expect(foldRecords([{ name: 'a', state: 'failed' }, { name: 'a', state: 'switched' }])).toBeUndefined();
  expect(foldRecords([{ name: 'a', state: 'switching', before: 1, warning: 'w' }, { name: 'a', state: 'switched' }])).toBeUndefined();
  expect(() => unfoldRecords([{ name: 'a' }], [1])).toThrow(/records order: 1 is not one of the 1 records/);
});

test('the fit recovers a line through its points, and the largest fleet under a limit is the last one below it', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 100_000 }), fc.integer({ min: 1, max: 5_000 }), (fixed, perHost) => {
      const line = fitLine([100, 300, 1000].map((n) => ({ n, y: fixed + perHost * n })));
      expect(line.perHost).toBeCloseTo(perHost, 6);
      expect(line.fixed).toBeCloseTo(fixed, 3);
      const limit = 10 * 1024 * 1024;
      const n = largestUnder({ fixed, perHost }, limit);
      if (fixed < limit) {
        expect(fixed + perHost * n).toBeLessThan(limit);
        expect(fixed + perHost * (n + 1)).toBeGreaterThanOrEqual(limit);
      }
    }),
  );
  expect(largestUnder({ fixed: 10, perHost: 0 }, 100)).toBe(Infinity);
});
