/** The rollback preview's limit (src/domain/saga.ts limitPreview, previewLimitOf): cut in the workflow's query. */
import type { RollbackPreview } from '../../src/domain/deployment';
import { limitPreview, previewLimitOf } from '../../src/domain/saga';

const gen = (number: number) => ({ number, storePath: `/nix/store/g${number}` });
const full: RollbackPreview = {
  hosts: ['a', 'b', 'c'].map((name) => ({ name, from: gen(43), to: gen(42), state: 'switched' as const })),
  revert: { needed: true, mergeSha: 'abc' },
  allowed: ['revert', 'revert-and-rollback', 'dismiss'],
};

test('when a limit is asked, then the first hosts come with how many there are in all; without one the preview is as it was', () => {
  expect(limitPreview(full, undefined)).toBe(full);
  expect(limitPreview(full, 1)).toEqual({ ...full, hosts: [full.hosts[0]], hostCount: 3 });
  expect(limitPreview(full, 0)).toEqual({ ...full, hosts: [], hostCount: 3 });
  // Cut again (the API, after a worker that cut already): the count stays the whole one.
  expect(limitPreview(limitPreview(full, 2), 1)).toEqual({ ...full, hosts: [full.hosts[0]], hostCount: 3 });
});

test('when the query argument is not a limit, then it is refused naming the field', () => {
  expect(previewLimitOf(undefined)).toBeUndefined();
  expect(previewLimitOf(null)).toBeUndefined();
  expect(previewLimitOf({})).toBeUndefined();
  expect(previewLimitOf({ limit: 20 })).toBe(20);
  expect(() => previewLimitOf({ limit: -1 })).toThrow(/^limit: a whole number from 0 to 500 \(got -1\)$/);
  expect(() => previewLimitOf({ limit: 1.5 })).toThrow(/^limit:/);
  expect(() => previewLimitOf({ limit: '3' })).toThrow(/^limit:.*got "3"/);
  expect(() => previewLimitOf({ limit: 501 })).toThrow(/^limit:/);
  expect(() => previewLimitOf(7)).toThrow(/rollbackPreview: the argument is an object/);
});
