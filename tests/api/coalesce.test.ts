/**
 * SharedProgress (src/service/coalesce.ts) on its own, over a query function that answers as the
 * workflow's progressSince does (a ring of transitions): the readers' answers are what they would have
 * got asking themselves, with at most one query in flight per deployment.
 */
import fc from 'fast-check';
import type { DeploymentStatus } from '../../src/domain/deployment';
import type { ProgressPage, Transition } from '../../src/domain/progress';
import { SharedProgress, pageFor } from '../../src/service/coalesce';

/** A workflow's progressSince over `n` transitions, ring of `ring`; counts queries and their concurrency. */
function workflow(n: number, ring = 1000) {
  const events: Transition[] = Array.from({ length: n }, (_, i) => ({ seq: i + 1, type: 'phase', from: 'deploying', to: 'deploying', at: `t${i}` }));
  const status = { deploymentId: 'd', phase: 'deploying' } as DeploymentStatus;
  const w = {
    cursor: n,
    inflight: 0,
    maxInflight: 0,
    queries: 0,
    release: [] as Array<() => void>,
    answer(since: number | null): ProgressPage {
      const oldest = Math.max(1, w.cursor - ring + 1);
      return { cursor: w.cursor, oldest, events: since === null ? [] : events.filter((e) => e.seq > since && e.seq >= oldest && e.seq <= w.cursor), status };
    },
    query(_id: string, since: number | null): Promise<ProgressPage> {
      w.queries += 1;
      w.inflight += 1;
      w.maxInflight = Math.max(w.maxInflight, w.inflight);
      // The state as of when the query reaches the workflow.
      const page = w.answer(since);
      return new Promise((resolve) => {
        w.release.push(() => {
          w.inflight -= 1;
          resolve(page);
        });
      });
    },
    /** Answers every query sent so far. */
    flush(): void {
      for (const r of w.release.splice(0)) r();
    },
  };
  return w;
}

const tick = () => new Promise((r) => setImmediate(r));

test('when 20 readers ask at once, then at most two queries are sent, one at a time, and each gets what it asked for', async () => {
  const w = workflow(50);
  const shared = new SharedProgress((id, s) => w.query(id, s));
  const cursors = [null, 10, 20, 30, 49, 50, null, 5, 0, 12, 44, 1, null, 2, 3, 4, 6, 7, 8, 9];
  const answers = cursors.map((c) => shared.get('d', c));
  await tick();
  // The first reader's query (null) cannot serve the rest; one more serves them all.
  w.flush();
  await tick();
  w.flush();
  const got = await Promise.all(answers);
  expect(w.queries).toBeLessThanOrEqual(2);
  expect(w.maxInflight).toBe(1);
  got.forEach((page, i) => expect(page).toEqual(pageFor(w.answer(cursors[i] as number | null), cursors[i] as number | null)));
});

test('readers who arrive while a query runs, in any order and with any cursor, get the answer they would have got alone; never two queries at once', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.tuple(fc.option(fc.integer({ min: 0, max: 60 }), { nil: null }), fc.boolean()), { minLength: 1, maxLength: 40 }), async (steps) => {
      const w = workflow(60);
      const shared = new SharedProgress((id, s) => w.query(id, s));
      const pending: Array<[number | null, Promise<ProgressPage>]> = [];
      for (const [cursor, answerNow] of steps) {
        pending.push([cursor, shared.get('d', cursor)]);
        await tick();
        if (answerNow) w.flush();
        await tick();
      }
      for (let i = 0; i < 5; i++) {
        w.flush();
        await tick();
      }
      for (const [cursor, p] of pending) expect(await p).toEqual(pageFor(w.answer(cursor), cursor));
      expect(w.maxInflight).toBe(1);
      expect(w.queries).toBeLessThanOrEqual(steps.length);
    }),
    { numRuns: 200 },
  );
});

test('after invalidate, a reader does not get an answer whose query started before the change', async () => {
  const w = workflow(10);
  w.cursor = 5;
  const shared = new SharedProgress((id, s) => w.query(id, s), { maxAgeMs: 60_000 });
  const first = shared.get('d', null);
  await tick();
  // An action changes the deployment (transitions 6-10), then tells the reads.
  w.cursor = 10;
  shared.invalidate('d');
  const second = shared.get('d', null);
  await tick();
  w.flush();
  await tick();
  w.flush();
  expect((await first).cursor).toBe(5);
  expect((await second).cursor).toBe(10);
  expect(w.queries).toBe(2);
  expect(w.maxInflight).toBe(1);
  // Within maxAgeMs, the newer answer is served again without a query (the older one was not kept).
  expect((await shared.get('d', null)).cursor).toBe(10);
  expect(w.queries).toBe(2);
});

test('a failed query fails its readers and the next reader asks again', async () => {
  let n = 0;
  const shared = new SharedProgress(async () => {
    n += 1;
    if (n === 1) throw new Error('query buffer full');
    return { cursor: 0, oldest: 1, events: [], status: {} as DeploymentStatus };
  });
  await expect(Promise.all([shared.get('d', null), shared.get('d', null)])).rejects.toThrow('query buffer full');
  expect(n).toBe(1);
  await expect(shared.get('d', null)).resolves.toMatchObject({ cursor: 0 });
  expect(n).toBe(2);
});
