/**
 * Bounded histories (issue 13, item 2), asserted on their structure, not on time: a deployment of 80
 * simulated hosts with small children (8 hosts each), failing near the end so the switched hosts are
 * rolled back, is measured execution by execution. The deployment itself takes no signal and runs no
 * per-host activity: its history grows per child, and each child's per host; extrapolated from these
 * measured counts with the product's default child sizes, every execution of a 100,000-host
 * deployment stays under Temporal's 10,240-event warning.
 */
import { DEFAULT_HOSTS_PER_CHILD } from '../../workflows/deploy';
import { hostOpsPerChild } from '../../workflows/host-ops';
import { hostName, runScaleDeployment, startScaleWorld } from '../../testkit/simfleet/scale';
import { saveHistory } from '../support/saga';
import { startTestTemporal, taskQueueFor, workflowBundle } from '../support/temporal';

const WARNING = 10_240;

test('when 80 simulated hosts deploy in children of 8 and host 75 fails, then the deployment takes no signal, runs no per-host step itself, and the measured growth keeps 100,000 hosts under the warning', async () => {
  const t = await startTestTemporal();
  const n = 80;
  const perChild = 8;
  const world = await startScaleWorld(n, { commandMs: 1 });
  try {
    const r = await runScaleDeployment(
      { client: t.client, nativeConnection: t.nativeConnection, namespace: t.server.namespace },
      world,
      { hosts: n, waveSize: 40, maxParallel: 8, failAt: 75, hostsPerChild: perChild },
      taskQueueFor('bounded-history'),
      await workflowBundle(),
    );
    // The deployment did what it says: halted at the failing host, rolled every changed host back.
    expect(r.status.failedHost).toBe(hostName(75));
    expect(r.status.outcome).toBe('failed-rolled-back');
    const states = new Map<string, number>();
    for (const h of r.status.hosts) states.set(h.state, (states.get(h.state) ?? 0) + 1);
    expect(states.get('switched') ?? 0).toBe(0);
    expect(states.get('rolled-back') ?? 0).toBeGreaterThanOrEqual(74);
    // Every host is back on (or never left) its seeded generation 2, the recorded one of those rolled back.
    for (const e of world.fleet.hosts) expect(e.host.profileGeneration().storePath).toMatch(/-seed-2$/);
    for (const h of r.status.hosts.filter((x) => x.state === 'rolled-back')) expect(h.before?.storePath).toMatch(/-seed-2$/);

    // The parent: no signal, a fixed number of activities (merge, revert, audit), growth per child only.
    const waveChildren = r.children.filter((c) => c.type === 'waveWorkflow');
    const opsChildren = r.children.filter((c) => c.type === 'hostOpsWorkflow');
    expect(r.parent.signals).toBe(0);
    expect(r.parent.activities).toBeLessThanOrEqual(12);
    expect(waveChildren.length).toBe(10);
    expect(opsChildren.length).toBeGreaterThanOrEqual(Math.ceil(74 / perChild) + Math.ceil(75 / perChild));
    for (const c of r.children) expect(c.signals).toBe(0);
    // Measured: events in the parent per child it ran (the fixed part counted in: an upper bound).
    const perChildInParent = r.parent.events / r.children.length;
    expect(perChildInParent).toBeLessThan(14);

    // Measured per host in the children (the largest per host of each kind).
    const perHost = (type: string): number => Math.max(...r.children.filter((c) => c.type === type && c.hosts > 0).map((c) => c.events / c.hosts));
    const wavePerHost = perHost('waveWorkflow');
    const opsPerHost = perHost('hostOpsWorkflow');

    // Extrapolated to 100,000 hosts in waves of 500, with the product's default child sizes.
    const big = 100_000;
    const waves = big / 500;
    const waveKids = waves * Math.ceil(500 / DEFAULT_HOSTS_PER_CHILD);
    const opsKids = 2 * Math.ceil(big / hostOpsPerChild(undefined));
    const parentAt100k = perChildInParent * (waveKids + opsKids);
    expect(parentAt100k).toBeLessThan(WARNING);
    expect(wavePerHost * DEFAULT_HOSTS_PER_CHILD).toBeLessThan(WARNING);
    expect(opsPerHost * hostOpsPerChild(undefined)).toBeLessThan(WARNING);
    // New histories for the replay tests (the deployment, a wave, a rollback child), when asked.
    const wave = waveChildren[0];
    const ops = opsChildren.find((c) => c.workflowId.includes('-rollback-'));
    await saveHistory(t.client.workflow.getHandle(r.parent.workflowId), 'a-bounded-deployment');
    if (wave) await saveHistory(t.client.workflow.getHandle(wave.workflowId), 'a-bounded-wave');
    if (ops) await saveHistory(t.client.workflow.getHandle(ops.workflowId), 'a-bounded-host-ops');
    console.log(JSON.stringify({ parent: r.parent, children: r.children.length, perChildInParent, wavePerHost, opsPerHost, parentAt100k, largest: r.largestChild, wallMs: r.wallMs }));
  } finally {
    await world.stop();
    await t.stop();
  }
}, 900_000); // 80 hosts on a shared machine: jest's bound under load, not a timing assertion
