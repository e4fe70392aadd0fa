/**
 * Hosts by reference: any selection of a fleet's hosts, folded into ranges and read back from the
 * fleet, is that selection in its order; folding a wave's records leaves each host as applying them
 * all would; the growth fit recovers a line it was given.
 */
import fc from 'fast-check';
import type { HostSpec } from '../../src/domain/deployment';
import { foldRecords, hostsByRef, indexesOf, rangesOf } from '../../src/domain/host-refs';
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

test('folded records leave every host as applying every record in order would', () => {
  const record = fc.record({ name: fc.constantFrom('a', 'b', 'c'), state: fc.option(fc.constantFrom('switching', 'switched', 'failed'), { nil: undefined }), error: fc.option(fc.string(), { nil: undefined }) }, { requiredKeys: ['name'] });
  fc.assert(
    fc.property(fc.array(record, { maxLength: 30 }), (records) => {
      const apply = (rs: typeof records): Map<string, Record<string, unknown>> => {
        const m = new Map<string, Record<string, unknown>>();
        for (const r of rs) {
          const h = m.get(r.name) ?? {};
          for (const [k, v] of Object.entries(r)) if (v !== undefined) h[k] = v;
          m.set(r.name, h);
        }
        return m;
      };
      const clean = records.map((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)) as (typeof records)[number]);
      expect(apply(foldRecords(clean))).toEqual(apply(clean));
      expect(foldRecords(clean).length).toBe(new Set(clean.map((r) => r.name)).size);
    }),
  );
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
