/**
 * A host that changed is rolled back, whatever failed after the change: whether it needs rolling back
 * follows from what the host says, not from the class of the error that stopped it.
 */
import { startDeployment, waitPhase, sagaHarness } from '../support/saga';

const stack = sagaHarness();

test('when the health check cannot run on a switched host (systemctl cannot reach systemd), then the host is still a rollback candidate and is rolled back', async () => {
  const w = await stack.world({
    hosts: [
      { name: 'p1', kind: 'nixos' },
      { name: 'p2', kind: 'nixos' },
    ],
  });
  const before = Object.fromEntries(w.fleet.hosts.map((h) => [h.name, h.profileGeneration()]));
  const pr = await w.openLockUpdate('v2');
  // p2's switch succeeds; then `systemctl --failed` fails (as when the switch broke D-Bus): the check
  // cannot run, an error that is neither a lost connection nor a verify failure.
  w.fleet.host('p2').failSystemctl(true);
  await stack.withWorker(w, 'health-cannot-run', async (taskQueue) => {
    const handle = await startDeployment(stack.t, w, taskQueue, { pr: pr.number, manualWindowSeconds: 0, rollout: { healthChecks: ['systemd'], healthGrace: 0 } });
    const s = await handle.result();
    expect(s.failedHost).toBe('p2');
    expect(s.hosts.map((h) => `${h.name}:${h.state}`)).toEqual(['p1:rolled-back', 'p2:rolled-back']);
    for (const h of w.fleet.hosts) {
      expect(h.profileGeneration().storePath).toBe(before[h.name]?.storePath);
      expect(h.currentSystem()).toBe(before[h.name]?.storePath);
    }
    expect(s.outcome).toBe('failed-rolled-back');
  });
  void waitPhase;
});
