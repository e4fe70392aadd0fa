/**
 * A transition shorter than one poll interval is still delivered, on the real stack. The API polls
 * once an hour here, so a whole manual rollback (a host going switched → rolling-back → rollback-failed
 * in well under a second) happens between two polls; a poll-and-diff feed would report it as one
 * `switched → rollback-failed`. The lossless feed reports every transition, in order, to the client
 * that was subscribed throughout and to one that reconnects with its cursor.
 */
import type { DeploymentStatus } from '../../src/domain/deployment';
import { OPERATOR, ProgressClient, startStack, VIEWER, type Stack } from './stack';

let s: Stack;
const clients: ProgressClient[] = [];
beforeAll(async () => {
  s = await startStack('ws-progress-short', [
    { name: 's1', kind: 'nixos' },
    { name: 's2', kind: 'nixos' },
  ], { pollMs: 3_600_000 });
});
afterAll(async () => {
  for (const c of clients) await c.close();
  await s?.stop();
});

type Numbered = { type: 'host' | 'phase'; seq: number; from: string; to: string; host?: string };
const transitions = (c: ProgressClient): Numbered[] => c.messages.filter((m) => m.type === 'host' || m.type === 'phase') as unknown as Numbered[];
const line = (e: Numbered): string => (e.type === 'host' ? `${String(e.host)}: ${e.from} → ${e.to}` : `phase: ${e.from} → ${e.to}`);

test('when a host rolls back and its rollback fails between two polls, then the client still receives switched → rolling-back → rollback-failed', async () => {
  const pr = await s.world.openLockUpdate('v2');
  s.world.fleet.host('s2').failActivation('units', { onlyVersion: 'v2' });
  const id = await s.deploy(pr.number, { revert: 'off', rollbackHosts: false });
  await s.waitPhase(id, ['awaiting-operator']);
  // s1's old generation no longer activates: its rollback fails at once.
  s.world.fleet.host('s1').failActivation('script');

  const watcher = new ProgressClient(s.base, { header: VIEWER });
  clients.push(watcher);
  await watcher.waitFor('ready', (m) => m.type === 'ready');
  await watcher.send({ type: 'subscribe', deploymentId: id });
  const snap = await watcher.waitFor<{ cursor: number; status: DeploymentStatus }>('the snapshot', (m) => m.type === 'snapshot');
  expect(snap.status.hosts.map((h) => `${h.name}:${h.state}`)).toEqual(['s1:switched', 's2:failed']);

  const res = await s.call<{ accepted: boolean; status: DeploymentStatus }>('POST', `/api/deployments/${id}/rollback`, { action: 'revert-and-rollback' }, OPERATOR);
  expect(res).toMatchObject({ status: 200, body: { accepted: true } });
  expect(res.body.status.hosts.map((h) => `${h.name}:${h.state}`)).toEqual(['s1:rollback-failed', 's2:rolled-back']);
  // The whole rollback ran inside one poll interval: the feed has not asked since the snapshot.
  expect(watcher.messages.filter((m) => m.type !== 'ready')).toEqual([snap]);

  // A client reconnecting with the watcher's cursor makes the feed ask now: both get every transition.
  const again = new ProgressClient(s.base, { header: VIEWER });
  clients.push(again);
  await again.waitFor('ready', (m) => m.type === 'ready');
  await again.send({ type: 'subscribe', deploymentId: id, since: snap.cursor });
  const target = res.body.status.progressCursor as number;
  for (const c of [watcher, again]) await c.waitFor('the transitions up to the rollback\'s answer', (m) => m.type === 'snapshot' && Number(m.cursor) >= target);

  const expected = [
    'phase: awaiting-operator → rolling-back',
    // reverse deployment order: s2 first
    's2: failed → rolling-back',
    's2: rolling-back → rolled-back',
    's1: switched → rolling-back',
    's1: rolling-back → rollback-failed',
    'phase: rolling-back → awaiting-operator',
  ];
  for (const c of [watcher, again]) {
    expect(transitions(c).map(line)).toEqual(expected);
    expect(transitions(c).map((e) => e.seq)).toEqual(expected.map((_, i) => snap.cursor + 1 + i));
  }
  const failed = transitions(watcher).find((e) => e.to === 'rollback-failed') as unknown as { error?: string };
  expect(failed.error).toMatch(/^rollback to generation 42 failed: /);
  // The reconnecting client had its transitions first, then the state they lead to.
  expect(again.messages.filter((m) => m.type !== 'ready').map((m) => m.type)).toEqual([...expected.map((l) => (l.startsWith('phase') ? 'phase' : 'host')), 'snapshot']);
});
