/**
 * The pure parts of issue 13's bounded reporting: what a re-read host says after its wave ended without
 * a result (src/domain/wave-recovery.ts), a running child's hosts merged into what readers see
 * (src/domain/live-child.ts), the cut of rollback/release work into children, and the bounds of a
 * page request that comes from outside.
 */
import fc from 'fast-check';
import { recordedFromPin, recoveryOf } from '../../src/domain/wave-recovery';
import { mergeLiveHosts, mergeLiveSummary } from '../../src/domain/live-child';
import { boundedPageQuery, MAX_PAGE_SIZE, summarize } from '../../src/domain/host-pages';
import type { DeploymentStatus } from '../../src/domain/deployment';
import { chunkGroups } from '../../workflows/host-ops';

const sp = (c: string) => `/nix/store/${c.repeat(32)}-nixos-system-h`;

test('when no pin of the deployment is on the host, then it was never recorded: untouched', () => {
  expect(recoveryOf({ current: { number: 5, storePath: sp('a') } })).toEqual({ kind: 'untouched', current: { number: 5, storePath: sp('a') } });
});

test('when the host is still on the pinned store path, then it is unmoved; when it is elsewhere, moved, with the pin as target', () => {
  const recorded = { number: 5, storePath: sp('a') };
  expect(recoveryOf({ current: recorded, recorded }).kind).toBe('unmoved');
  expect(recoveryOf({ current: { number: 6, storePath: sp('b') }, recorded })).toEqual({ kind: 'moved', recorded, current: { number: 6, storePath: sp('b') } });
  expect(recoveryOf({ error: 'unreachable' })).toEqual({ kind: 'unreadable', error: 'unreachable' });
});

test('the recorded generation from the pin: the current one, else the highest link to it, else a number no link has', () => {
  const cur = { number: 7, storePath: sp('c') };
  expect(recordedFromPin(sp('c'), cur, [])).toEqual(cur);
  expect(recordedFromPin(sp('a'), cur, [{ number: 3, storePath: sp('a') }, { number: 5, storePath: sp('a') }, { number: 7, storePath: sp('c') }])).toEqual({ number: 5, storePath: sp('a') });
  expect(recordedFromPin(sp('a'), cur, [{ number: 9, storePath: sp('d') }])).toEqual({ number: 10, storePath: sp('a') });
});

function status(n: number): DeploymentStatus {
  const hosts = Array.from({ length: n }, (_, i) => ({ name: `h${i}`, kind: 'nixos' as const, state: 'pending' as const, wave: 'w' }));
  return { deploymentId: 'd', phase: 'deploying', repository: { owner: 'o', name: 'r', branch: 'main' }, change: { kind: 'pull-request', number: 1 }, hosts, audit: [], waves: [{ name: 'w', hosts: hosts.map((h) => h.name), state: 'running' }] } as DeploymentStatus;
}

test('a running child\'s hosts merged in: the status shows them, the summary counts them, the same either way', () => {
  const s = status(5);
  const live = [
    { name: 'h1', state: 'switched' as const, before: { number: 1, storePath: sp('a') } },
    { name: 'h2', state: 'switching' as const },
  ];
  const merged = mergeLiveHosts(s, live);
  expect(merged.hosts.map((h) => h.state)).toEqual(['pending', 'switched', 'switching', 'pending', 'pending']);
  expect(s.hosts[1]?.state).toBe('pending');
  expect(mergeLiveSummary(summarize(s), 'w', live).hosts.byState).toEqual(summarize(merged).hosts.byState);
  expect(mergeLiveSummary(summarize(s), 'w', live).waves?.[0]?.byState).toEqual(summarize(merged).waves?.[0]?.byState);
});

test('property: the cut into children keeps every host once, in order, at most perChild per child, none empty', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 0, max: 30 })), { maxLength: 6 }), fc.integer({ min: 1, max: 12 }), (shape, per) => {
      let id = 0;
      const groups = shape.map(([maxParallel, count]) => ({ maxParallel, hosts: Array.from({ length: count }, () => ({ host: { name: `h${id++}` } as never })) }));
      const parts = chunkGroups(groups, per);
      const flat = parts.flatMap((p) => p.flatMap((g) => g.hosts.map((h) => (h.host as { name: string }).name)));
      expect(flat).toEqual(groups.flatMap((g) => g.hosts.map((h) => (h.host as { name: string }).name)));
      for (const p of parts) expect(p.reduce((n, g) => n + g.hosts.length, 0)).toBeLessThanOrEqual(per);
      for (const p of parts) expect(p.every((g) => g.hosts.length > 0)).toBe(true);
    }),
  );
});

test('a page request from outside is bounded: no page past MAX_PAGE_SIZE, whole numbers, known states only', () => {
  expect(boundedPageQuery({ page: 0, pageSize: 10_000 })).toEqual({ page: 1, pageSize: MAX_PAGE_SIZE });
  expect(boundedPageQuery({ page: 2.5 as number, pageSize: -1, state: 'nope' as never })).toEqual({ page: 1, pageSize: 1 });
  expect(boundedPageQuery(null)).toMatchObject({ page: 1 });
  expect(boundedPageQuery({ page: 3, pageSize: 20, state: 'failed', wave: 'w1' })).toEqual({ page: 3, pageSize: 20, state: 'failed', wave: 'w1' });
});
