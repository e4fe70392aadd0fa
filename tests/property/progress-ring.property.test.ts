/**
 * The transition ring and the reader's rule (src/domain/progress.ts), fast-check generated: whatever
 * the ring's size, the number of transitions and where a reader's cursor is, a reader gets exactly the
 * transitions after its cursor, in order, or is told to start over; never a gap, never a repeat.
 */
import fc from 'fast-check';
import type { DeploymentStatus, HostStatus } from '../../src/domain/deployment';
import { hostTransition, readPage, TransitionRing, type Transition } from '../../src/domain/progress';

const status = { deploymentId: 'd', phase: 'deploying', hosts: [], audit: [] } as unknown as DeploymentStatus;
const phase = (seq: number): Transition => ({ seq, type: 'phase', from: 'deploying', to: 'baking', at: `t${seq}` });
const ringWith = (capacity: number, n: number): TransitionRing => {
  const r = new TransitionRing(capacity);
  for (let i = 0; i < n; i++) r.record(phase);
  return r;
};

test('when transitions are recorded, then they are numbered 1, 2, 3, … and the ring holds the last `capacity` of them', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 0, max: 200 }), (capacity, n) => {
      const r = ringWith(capacity, n);
      expect(r.cursor).toBe(n);
      const held = r.since(Math.max(0, n - capacity));
      expect(held.map((t) => t.seq)).toEqual(Array.from({ length: Math.min(n, capacity) }, (_, i) => n - Math.min(n, capacity) + 1 + i));
      expect(r.page(0, status).oldest).toBe(n <= capacity ? 1 : n - capacity + 1);
    }),
  );
});

test('when a reader asks from any cursor, then it gets exactly the transitions after it, or is told to start over when the ring no longer holds them', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 0, max: 150 }), fc.integer({ min: -5, max: 160 }), (capacity, n, cursor) => {
      const r = ringWith(capacity, n);
      const page = r.page(cursor, status);
      const read = readPage(cursor, page);
      const held = cursor >= Math.max(0, n - capacity) && cursor <= n;
      if (!held) {
        expect(read).toEqual({ kind: 'reset' });
        return;
      }
      expect(read).toEqual({ kind: 'events', events: Array.from({ length: n - cursor }, (_, i) => phase(cursor + 1 + i)) });
    }),
  );
});

test('when several readers share pages asked from the furthest-behind cursor, then each sees every transition once, in order, as long as it keeps up', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 3, max: 30 }),
      // Each step: record some transitions, then (maybe) poll.
      fc.array(fc.record({ record: fc.integer({ min: 0, max: 3 }), poll: fc.boolean() }), { maxLength: 60 }),
      fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 4 }),
      (capacity, steps, joins) => {
        const r = new TransitionRing(capacity);
        // Readers join at the step of their index (a snapshot at the cursor then), and keep what they read.
        const readers: Array<{ joinAt: number; cursor?: number; seen: number[]; resets: number }> = joins.map((j) => ({ joinAt: j, seen: [], resets: 0 }));
        let sinceLastPoll = 0;
        steps.forEach((s, i) => {
          for (let k = 0; k < s.record; k++) r.record(phase);
          sinceLastPoll += s.record;
          for (const rd of readers) if (rd.joinAt === i) rd.cursor = r.cursor;
          if (!s.poll) return;
          const active = readers.filter((rd) => rd.cursor !== undefined);
          const since = active.length ? Math.min(...active.map((rd) => rd.cursor as number)) : null;
          const page = r.page(since, status);
          for (const rd of active) {
            const got = readPage(rd.cursor as number, page);
            // A reader that kept up (no more than `capacity` transitions since the last poll) is served.
            if (sinceLastPoll <= capacity) expect(got.kind).toBe('events');
            if (got.kind === 'reset') rd.resets += 1;
            if (got.kind === 'events') rd.seen.push(...got.events.map((e) => e.seq));
            expect(got.kind).not.toBe('behind');
            rd.cursor = page.cursor;
          }
          sinceLastPoll = 0;
        });
        for (const rd of readers) {
          // Strictly increasing, no gaps between consecutive reads unless a reset said so.
          if (rd.resets === 0) for (let k = 1; k < rd.seen.length; k++) expect(rd.seen[k]).toBe((rd.seen[k - 1] as number) + 1);
          expect(new Set(rd.seen).size).toBe(rd.seen.length);
        }
      },
    ),
  );
});

test('when a cursor is not a whole number, then the reader starts over; when a page was asked from further on, the reader waits for the next', () => {
  const r = ringWith(10, 5);
  for (const bad of [1.5, Number.NaN, -1, 6]) expect(readPage(bad, r.page(bad, status))).toEqual({ kind: 'reset' });
  expect(r.since('3' as unknown)).toHaveLength(5);
  expect(r.since(null)).toEqual([]);
  expect(readPage(2, r.page(4, status))).toEqual({ kind: 'behind' });
  expect(readPage(4, r.page(2, status))).toEqual({ kind: 'events', events: [phase(5)] });
  expect(() => new TransitionRing(0)).toThrow(/capacity/);
});

test('a host transition carries the error of a failed state and the generation it landed on', () => {
  const h: HostStatus = { name: 'm1', kind: 'nixos', state: 'rollback-failed', before: { number: 42, storePath: '/nix/store/a' }, after: { number: 43, storePath: '/nix/store/b' }, error: 'boom' };
  expect(hostTransition(h, 'rolling-back', 7, 'now')).toEqual({ seq: 7, type: 'host', host: 'm1', from: 'rolling-back', to: 'rollback-failed', error: 'boom', at: 'now' });
  expect(hostTransition({ ...h, state: 'rolled-back' }, 'rolling-back', 8, 'now')).toEqual({ seq: 8, type: 'host', host: 'm1', from: 'rolling-back', to: 'rolled-back', generation: 42, at: 'now' });
  // A rollback to a collected link lands on a new number of the recorded store path: the transition says where.
  expect(hostTransition({ ...h, state: 'rolled-back', now: { number: 44, storePath: '/nix/store/a' } }, 'rolling-back', 8, 'now')).toMatchObject({ generation: 44 });
  expect(hostTransition({ ...h, state: 'switched' }, 'switching', 9, 'now')).toMatchObject({ generation: 43 });
  expect(hostTransition({ ...h, state: 'rolling-back' }, 'failed', 10, 'now')).not.toHaveProperty('error');
});
