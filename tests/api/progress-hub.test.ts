/**
 * The progress hub's delivery rules over a stand-in source: the real TransitionRing (the one the
 * workflow keeps), answered one query at a time when the test says so, so that any number of
 * transitions can happen "between two polls" without a clock. The real-stack tests
 * (progress.test.ts, progress-short.test.ts) check the same over Temporal and the WebSocket.
 */
import { ProgressHub, type ProgressEvent } from '../../src/api/progress';
import type { DeploymentStatus, HostState, HostStatus, Phase } from '../../src/domain/deployment';
import { hostTransition, TransitionRing, type ProgressPage } from '../../src/domain/progress';
import { waitFor } from '../support/temporal';

/** A deployment's state and its ring, changed by the test; queries wait until the test answers them. */
class Source {
  readonly ring: TransitionRing;
  readonly status: DeploymentStatus;
  readonly asked: Array<number | null> = [];
  private readonly waiting: Array<() => void> = [];

  constructor(capacity: number, hosts: string[]) {
    this.ring = new TransitionRing(capacity);
    this.status = { deploymentId: 'd1', phase: 'deploying', hosts: hosts.map((name) => ({ name, kind: 'nixos', state: 'pending' })), audit: [] } as unknown as DeploymentStatus;
  }

  move(host: string, to: HostState): void {
    const h = this.status.hosts.find((x) => x.name === host) as HostStatus;
    const from = h.state;
    h.state = to;
    this.status.progressCursor = this.ring.record((seq) => hostTransition(h, from, seq, 'now')).seq;
  }

  phase(to: Phase): void {
    const from = this.status.phase;
    this.status.phase = to;
    this.status.progressCursor = this.ring.record((seq) => ({ seq, type: 'phase' as const, from, to, at: 'now' })).seq;
  }

  readonly progress = (_id: string, since: number | null): Promise<ProgressPage> =>
    new Promise((resolve) => {
      this.asked.push(since);
      // Answered as of the moment the test releases it (a copy: the feed must not see later changes).
      this.waiting.push(() => resolve(JSON.parse(JSON.stringify(this.ring.page(since, this.status))) as ProgressPage));
    });

  /** Answers the next query (waiting for the feed to ask). */
  async answer(): Promise<void> {
    await waitFor('the feed to query', () => (this.waiting.length > 0 ? true : undefined), 10_000, 1);
    (this.waiting.shift() as () => void)();
    // Let the feed deliver the page.
    await new Promise((r) => setImmediate(r));
  }
}

const listen = (): { got: ProgressEvent[]; fn: (e: ProgressEvent) => void } => {
  const got: ProgressEvent[] = [];
  return { got, fn: (e) => got.push(e) };
};
const line = (e: ProgressEvent): string =>
  e.type === 'host' ? `${e.seq} ${e.host}: ${e.from} → ${e.to}` : e.type === 'phase' ? `${e.seq} phase: ${e.from} → ${e.to}` : e.type === 'snapshot' ? `snapshot@${e.cursor}${e.reset ? ' reset' : ''}` : e.type;

let hub: ProgressHub;
afterEach(async () => hub?.close());

test('when a host passes through a state between two polls, then every listener still gets each transition, in order, once', async () => {
  const src = new Source(100, ['m1', 'm2']);
  hub = new ProgressHub({ progress: src.progress, pollMs: 1 });
  const a = listen();
  hub.subscribe('d1', a.fn);
  await src.answer();
  expect(a.got.map(line)).toEqual(['snapshot@0']);

  // All of this happens before the next query is answered: the old poll-and-diff saw one change.
  src.move('m1', 'switching');
  src.move('m1', 'switched');
  src.move('m1', 'rolling-back');
  src.move('m1', 'rollback-failed');
  await src.answer();
  expect(a.got.map(line)).toEqual(['snapshot@0', '1 m1: pending → switching', '2 m1: switching → switched', '3 m1: switched → rolling-back', '4 m1: rolling-back → rollback-failed', 'snapshot@4']);
  // Nothing new: nothing sent.
  await src.answer();
  expect(a.got).toHaveLength(6);
  expect(src.asked).toEqual([null, 0, 4]);
});

test('when a client reconnects with the last seq it had, then it gets everything after it, then the state, and goes on with the others', async () => {
  const src = new Source(100, ['m1', 'm2']);
  hub = new ProgressHub({ progress: src.progress, pollMs: 1 });
  const a = listen();
  hub.subscribe('d1', a.fn);
  await src.answer();
  src.move('m1', 'switching');
  src.move('m1', 'switched');
  src.move('m2', 'switching');
  await src.answer();

  // b had seen up to seq 1 before its connection dropped.
  const b = listen();
  hub.subscribe('d1', b.fn, 1);
  src.move('m2', 'failed');
  await src.answer();
  // The feed asked from the furthest-behind cursor, and each listener got only what it lacked.
  expect(src.asked.at(-1)).toBe(1);
  expect(b.got.map(line)).toEqual(['2 m1: switching → switched', '3 m2: pending → switching', '4 m2: switching → failed', 'snapshot@4']);
  expect(a.got.map(line).slice(-2)).toEqual(['4 m2: switching → failed', 'snapshot@4']);
  const seqs = a.got.flatMap((e) => (e.type === 'host' || e.type === 'phase' ? [e.seq] : []));
  expect(seqs).toEqual([1, 2, 3, 4]);

  // A late client without a cursor starts from the latest state at once, then everything after it.
  const c = listen();
  hub.subscribe('d1', c.fn);
  expect(c.got.map(line)).toEqual(['snapshot@4']);
  src.phase('compensating');
  await src.answer();
  expect(c.got.map(line)).toEqual(['snapshot@4', '5 phase: deploying → compensating', 'snapshot@5']);
});

test('when a client\'s cursor has fallen off the ring (or is from elsewhere), then it gets a snapshot marked reset, and from then on every transition', async () => {
  const src = new Source(3, ['m1', 'm2']);
  hub = new ProgressHub({ progress: src.progress, pollMs: 1 });
  src.move('m1', 'switching');
  src.move('m1', 'switched');
  src.move('m2', 'switching');
  src.move('m2', 'switched');
  src.move('m2', 'rolling-back');
  // The ring holds 3..5: a client at 1 cannot be served; one at 2 can.
  const behind = listen();
  const atTwo = listen();
  const ahead = listen();
  hub.subscribe('d1', behind.fn, 1);
  hub.subscribe('d1', atTwo.fn, 2);
  hub.subscribe('d1', ahead.fn, 99);
  await src.answer();
  expect(behind.got.map(line)).toEqual(['snapshot@5 reset']);
  expect((behind.got[0] as { status: DeploymentStatus }).status.hosts.map((h) => h.state)).toEqual(['switched', 'rolling-back']);
  expect(atTwo.got.map(line)).toEqual(['3 m2: pending → switching', '4 m2: switching → switched', '5 m2: switched → rolling-back', 'snapshot@5']);
  expect(ahead.got.map(line)).toEqual(['snapshot@5 reset']);
  src.move('m2', 'rolled-back');
  await src.answer();
  for (const l of [behind, atTwo, ahead]) expect(l.got.map(line).slice(-2)).toEqual(['6 m2: rolling-back → rolled-back', 'snapshot@6']);
});

test('when the deployment closes, then each listener gets its last transitions and one final', async () => {
  const src = new Source(100, ['m1']);
  hub = new ProgressHub({ progress: src.progress, pollMs: 1 });
  const a = listen();
  hub.subscribe('d1', a.fn);
  await src.answer();
  src.move('m1', 'switching');
  src.move('m1', 'switched');
  src.phase('succeeded');
  await src.answer();
  expect(a.got.map(line)).toEqual(['snapshot@0', '1 m1: pending → switching', '2 m1: switching → switched', '3 phase: deploying → succeeded', 'snapshot@3', 'final']);

  // A client reconnecting after the end still gets what it missed, then final.
  const b = listen();
  hub.subscribe('d1', b.fn, 1);
  expect(src.asked.at(-1)).toBe(1);
  await src.answer();
  expect(b.got.map(line)).toEqual(['2 m1: switching → switched', '3 phase: deploying → succeeded', 'snapshot@3', 'final']);
  expect(a.got.filter((e) => e.type === 'final')).toHaveLength(1);
});

test('when the deployment is terminated outside its own code (its last state stays "deploying"), then the feed asks how it ended, sends one final and stops polling', async () => {
  const src = new Source(100, ['m1']);
  const execution: { ended?: string } = {};
  const closedAsked: string[] = [];
  hub = new ProgressHub({ progress: src.progress, pollMs: 1, idlePolls: 3, closed: async (id) => (closedAsked.push(id), execution.ended) });
  const a = listen();
  hub.subscribe('d1', a.fn);
  await src.answer();
  src.move('m1', 'switching');
  await src.answer();
  // Idle while it runs: asked after 3 polls with nothing new, told it runs, goes on polling.
  for (let i = 0; i < 3; i++) await src.answer();
  await waitFor('the feed to ask whether it runs', () => (closedAsked.length === 1 ? true : undefined), 10_000, 1);
  expect(a.got.map(line)).toEqual(['snapshot@0', '1 m1: pending → switching', 'snapshot@1']);
  // Terminated (e.g. `temporal workflow terminate`): the next idle check ends the feed.
  execution.ended = 'TERMINATED';
  for (let i = 0; i < 3; i++) await src.answer();
  await waitFor('the final event', () => (a.got.some((e) => e.type === 'final') ? true : undefined), 10_000, 1);
  expect(a.got.at(-1)).toEqual({ type: 'final', deploymentId: 'd1', outcome: 'terminated', closed: 'TERMINATED' });
  // No query after the final: pollMs is 1, so a feed still polling would ask within these turns.
  const asked = src.asked.length;
  for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
  expect(src.asked.length).toBe(asked);
});
