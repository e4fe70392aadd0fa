/**
 * A deployment whose workflow ends outside its own phases (terminated here, as `temporal workflow
 * terminate` does) must not be followed forever: the feed sends one final naming how it ended, and the
 * API stops its feed once the client leaves.
 */
import { ProgressClient, startStack, VIEWER, type Stack } from './stack';

let s: Stack;
const clients: ProgressClient[] = [];
beforeAll(async () => {
  s = await startStack('ws-progress-terminated', [{ name: 't1', kind: 'nixos' }], { pollMs: 50 });
});
afterAll(async () => {
  for (const c of clients) await c.close();
  await s?.stop();
});

test('when a waiting deployment is terminated, then a subscribed client gets a final with closed TERMINATED', async () => {
  const pr = await s.world.openLockUpdate('v2');
  s.world.fleet.host('t1').failActivation('units', { onlyVersion: 'v2' });
  const id = await s.deploy(pr.number, { revert: 'off', rollbackHosts: false });
  await s.waitPhase(id, ['awaiting-operator']);

  const watcher = new ProgressClient(s.base, { header: VIEWER });
  clients.push(watcher);
  await watcher.waitFor('ready', (m) => m.type === 'ready');
  await watcher.send({ type: 'subscribe', deploymentId: id });
  await watcher.waitFor('the snapshot', (m) => m.type === 'snapshot');

  await s.t.client.workflow.getHandle(id).terminate('test: an admin terminated it');
  const final = await watcher.waitFor<{ outcome?: string; closed?: string }>('the final event', (m) => m.type === 'final');
  // Its own outcome stays (the halt had decided it); how the execution ended comes with it.
  expect(final).toMatchObject({ type: 'final', deploymentId: id, closed: 'TERMINATED', outcome: 'failed-not-rolled-back' });
  await watcher.close();
});
