/** How a deployment cuts its hosts into children (src/domain/child-chunks.ts): waves and the build-first phase alike. */
import fc from 'fast-check';
import { chunkChildId, chunksOf, DEFAULT_HOSTS_PER_CHILD, hostsPerChildOf } from '../../src/domain/child-chunks';

test('when a rollout names no child size, then the default applies; a size below 1 is 1', () => {
  expect(hostsPerChildOf(undefined)).toBe(DEFAULT_HOSTS_PER_CHILD);
  expect(hostsPerChildOf(8)).toBe(8);
  expect(hostsPerChildOf(0)).toBe(1);
});

test('when 10,000 hosts are cut by the default size, then 50 children of 200 each', () => {
  const chunks = chunksOf(Array.from({ length: 10_000 }, (_, i) => i), hostsPerChildOf(undefined));
  expect(chunks).toHaveLength(50);
  expect(chunks.every((c) => c.length === 200)).toBe(true);
});

test('when hosts are cut into chunks, then none is empty or over the size, and they give the hosts back in order', () => {
  fc.assert(
    fc.property(fc.array(fc.integer(), { maxLength: 300 }), fc.integer({ min: 1, max: 50 }), (items, size) => {
      const chunks = chunksOf(items, size);
      expect(chunks.flat()).toEqual(items);
      for (const c of chunks) expect(c.length).toBeGreaterThan(0);
      for (const c of chunks) expect(c.length).toBeLessThanOrEqual(size);
      // Only the last may be short, so the count is the least possible.
      expect(chunks.length).toBe(Math.ceil(items.length / size));
    }),
  );
});

test('when children are named, then the first keeps the single child id and the later ones are numbered from 2', () => {
  expect([0, 1, 2].map((k) => chunkChildId('d-build', k))).toEqual(['d-build', 'd-build-2', 'd-build-3']);
  expect(chunkChildId('d-wave-1', 1)).toBe('d-wave-1-2');
});
