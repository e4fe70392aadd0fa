/**
 * The live feed's size at fleet scale (issue 13): a listener of the `summary` view receives the bounded
 * summary and the hosts that changed, so no message grows with the fleet. The same deployment story
 * (hosts of the running wave change without transitions, others with them, a phase change) is played
 * at 1,000 and at 10,000 hosts through the real ProgressHub, its pages cut by the real TransitionRing,
 * summarize() and the service's live-host merge; every message's bytes are measured. A size property,
 * not a timing one. The `status` view's snapshot of the same deployment is measured beside it.
 */
import { HOSTS_PER_MESSAGE, ProgressHub, type ProgressEvent, type SummaryFeedPage } from '../../src/api/progress';
import type { DeploymentStatus, HostState, HostStatus } from '../../src/domain/deployment';
import { summarize } from '../../src/domain/host-pages';
import { mergeLiveSummary, type LiveHost } from '../../src/domain/live-child';
import { hostTransition, TransitionRing, type ProgressPage } from '../../src/domain/progress';
import { waitFor } from '../support/temporal';
import { bigStatus } from '../support/big-status';

const WAVES = 10;

/** A deployment of `n` hosts in WAVES waves, the first running (its hosts change in its child, as live hosts). */
class Deployment {
  readonly ring = new TransitionRing();
  readonly status: DeploymentStatus;
  /** The running child's hosts as it reports them (waveHosts). */
  readonly live = new Map<string, LiveHost>();

  constructor(n: number) {
    this.status = bigStatus(n, WAVES, { liveChild: 'd1-wave-w1' });
  }

  /** A host of the running wave moves in its child: no transition until the child completes. */
  moveLive(i: number, state: HostState): void {
    const name = this.status.hosts[i]?.name as string;
    this.live.set(name, { name, state, before: { number: 42, storePath: `/nix/store/${'a'.repeat(32)}-nixos-system-${name}-42` } });
  }

  /** A host moves in the deployment's own status (a numbered transition). */
  move(i: number, to: HostState): void {
    const h = this.status.hosts[i] as HostStatus;
    const from = h.state;
    h.state = to;
    this.status.progressCursor = this.ring.record((seq) => hostTransition(h, from, seq, 'now')).seq;
  }

  phase(to: DeploymentStatus['phase']): void {
    const from = this.status.phase;
    this.status.phase = to;
    this.status.progressCursor = this.ring.record((seq) => ({ seq, type: 'phase' as const, from, to, at: 'now' })).seq;
  }

  readonly summary = async (_id: string, since: number | null): Promise<SummaryFeedPage> => {
    const p = this.ring.page(since, this.status);
    const live = [...this.live.values()].map((h) => ({ ...h }));
    return { cursor: p.cursor, oldest: p.oldest, events: p.events, summary: mergeLiveSummary(summarize(this.status), 'w1', live), live };
  };

  readonly progress = async (_id: string, since: number | null): Promise<ProgressPage> => structuredClone(this.ring.page(since, this.status));
}

/** Plays the story at `n` hosts; returns every message a summary listener received, and one status snapshot. */
async function play(n: number): Promise<{ messages: ProgressEvent[]; snapshotBytes: number }> {
  const d = new Deployment(n);
  const hub = new ProgressHub({ progress: d.progress, summary: d.summary, pollMs: 2 });
  const got: ProgressEvent[] = [];
  const off = hub.subscribe('d1', (e) => got.push(e), undefined, 'summary');
  try {
    const seen = (pred: (e: ProgressEvent) => boolean, what: string) => waitFor(what, () => (got.some(pred) ? true : undefined), 10_000, 2);
    await seen((e) => e.type === 'summary', 'the first summary');
    // Three hosts of the running wave start switching, then one of them switches.
    for (const i of [0, 1, 2]) d.moveLive(i, 'switching');
    await seen((e) => e.type === 'hosts' && e.hosts.some((h) => h.name === d.status.hosts[2]?.name), 'the live hosts');
    d.moveLive(1, 'switched');
    await seen((e) => e.type === 'hosts' && e.hosts.some((h) => h.name === d.status.hosts[1]?.name && h.state === 'switched'), 'the switched live host');
    // Half a wave of its hosts change at once: they come in messages of at most HOSTS_PER_MESSAGE.
    for (let i = 3; i < 250; i++) d.moveLive(i, 'switching');
    await seen((e) => e.type === 'hosts' && e.hosts.some((h) => h.name === d.status.hosts[249]?.name), 'the burst of live hosts');
    // Numbered transitions (a completed wave's records), then the phase.
    for (const i of [5, 6, 7]) d.move(i, 'failed');
    d.phase('awaiting-operator');
    await seen((e) => e.type === 'phase' && e.to === 'awaiting-operator', 'the phase transition');
    await seen((e) => e.type === 'summary' && e.summary.phase === 'awaiting-operator', 'the summary after it');
  } finally {
    off();
    await hub.close();
  }
  // What a `status` listener gets as its first message: the whole status.
  const snap: ProgressEvent[] = [];
  const d2 = new Deployment(n);
  const hub2 = new ProgressHub({ progress: d2.progress, summary: d2.summary, pollMs: 2 });
  const off2 = hub2.subscribe('d1', (e) => snap.push(e));
  await waitFor('a status snapshot', () => (snap.some((e) => e.type === 'snapshot') ? true : undefined), 10_000, 2);
  off2();
  await hub2.close();
  return { messages: got, snapshotBytes: Buffer.byteLength(JSON.stringify(snap.find((e) => e.type === 'snapshot'))) };
}

const bytes = (e: ProgressEvent): number => Buffer.byteLength(JSON.stringify(e));

test('when a deployment grows from 1,000 to 10,000 hosts, then no message of the summary live feed grows with it', async () => {
  const small = await play(1_000);
  const large = await play(10_000);
  const stats = (r: { messages: ProgressEvent[] }) => {
    const by = new Map<string, number>();
    for (const e of r.messages) by.set(e.type, Math.max(by.get(e.type) ?? 0, bytes(e)));
    return by;
  };
  const s = stats(small);
  const l = stats(large);
  process.stdout.write(
    `feed-size: largest message by type at 1,000 / 10,000 hosts: ${[...l.keys()].map((k) => `${k} ${s.get(k)} / ${l.get(k)} B`).join(', ')}; a status snapshot ${small.snapshotBytes} / ${large.snapshotBytes} B\n`,
  );
  for (const [type, max] of l) {
    // The same story gives the same messages: host names are equally long, counts have one more digit.
    expect({ type, grew: max - (s.get(type) ?? 0) <= 64 }).toEqual({ type, grew: true });
    expect({ type, bounded: max < 64 * 1024 }).toEqual({ type, bounded: true });
  }
  for (const r of [small, large]) {
    for (const e of r.messages) if (e.type === 'hosts') expect(e.hosts.length).toBeLessThanOrEqual(HOSTS_PER_MESSAGE);
    // Each live host change was sent once, as it happened (not the whole wave each time).
    const sent = r.messages.flatMap((e) => (e.type === 'hosts' ? e.hosts.map((h) => `${h.name}:${h.state}`) : []));
    expect(new Set(sent).size).toBe(sent.length);
    expect(sent.length).toBe(250 + 1);
  }
  // The whole status, beside it, grows with the fleet (what the summary view avoids).
  expect(large.snapshotBytes).toBeGreaterThan(8 * small.snapshotBytes);
}, 120_000);
