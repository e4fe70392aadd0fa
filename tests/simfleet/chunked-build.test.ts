/**
 * The build-first phase in chunks (issue 13, item 2): a buildFirst deployment of 30 simulated hosts
 * with children of 8 builds in four build children of at most 8 hosts each, in turn, the hosts by
 * reference, and the targets they built reach the waves; a build failure in the third chunk stops the
 * deployment before any switch, and the fourth chunk is never built.
 */
import { hostName, runScaleDeployment, startScaleWorld } from '../../testkit/simfleet/scale';
import { saveHistory } from '../support/saga';
import { startTestTemporal, taskQueueFor, workflowBundle, type TestTemporal } from '../support/temporal';

const n = 30;
const perChild = 8;
let t: TestTemporal;

beforeAll(async () => {
  t = await startTestTemporal();
}, 300_000);
afterAll(async () => {
  await t?.stop();
});

const conn = (): Parameters<typeof runScaleDeployment>[0] => ({ client: t.client, nativeConnection: t.nativeConnection, namespace: t.server.namespace });

test('when 30 hosts build first with children of 8, then four build children of at most 8 hosts build them in turn and the waves switch to the built targets', async () => {
  const world = await startScaleWorld(n, { commandMs: 1 });
  try {
    const r = await runScaleDeployment(conn(), world, { hosts: n, waveSize: 15, maxParallel: 4, failAt: 0, hostsPerChild: perChild, buildFirst: true }, taskQueueFor('chunked-build'), await workflowBundle());
    expect(r.status.outcome).toBe('succeeded');
    const builds = r.children.filter((c) => c.type === 'buildWorkflow');
    expect(builds.map((c) => c.workflowId.slice(r.parent.workflowId.length))).toEqual(['-build', '-build-2', '-build-3', '-build-4']);
    expect(builds.map((c) => c.hosts)).toEqual([8, 8, 8, 6]);
    // By reference: no host spec in a build child's input.
    for (const c of builds) expect(c.bytesBy['workflow input']).toBeLessThan(1_000);
    // Every host switched, to the target its build child built (the waves were given the targets).
    expect(r.status.hosts.every((h) => h.state === 'switched')).toBe(true);
    for (const h of r.status.hosts) expect(h.target).toMatch(/^\/nix\/store\//);
    for (const e of world.fleet.hosts) {
      const row = r.status.hosts.find((h) => h.name === e.name);
      expect(e.host.profileGeneration().storePath).toBe(row?.target);
    }
    await saveHistory(t.client.workflow.getHandle(r.parent.workflowId), 'h-build-chunked-build');
    await saveHistory(t.client.workflow.getHandle(builds[1]?.workflowId ?? ''), 'h-build-chunked-build-child');
  } finally {
    await world.stop();
  }
}, 600_000);

test('when a host of the third build chunk fails to build, then the deployment stops with no host switched and the fourth chunk is not built', async () => {
  const world = await startScaleWorld(n, { commandMs: 1 });
  try {
    const r = await runScaleDeployment(conn(), world, { hosts: n, waveSize: 15, maxParallel: 4, failAt: 0, hostsPerChild: perChild, buildFirst: true, failBuildAt: 20 }, taskQueueFor('chunked-build-fails'), await workflowBundle());
    expect(r.status.failure).toMatch(new RegExp(`the build failed on ${hostName(20)}; no host was switched`));
    expect(r.status.outcome).toBe('failed-rolled-back');
    const builds = r.children.filter((c) => c.type === 'buildWorkflow');
    expect(builds.map((c) => c.hosts)).toEqual([8, 8, 8]);
    expect(r.children.filter((c) => c.type === 'waveWorkflow')).toHaveLength(0);
    expect(r.status.hosts.every((h) => h.state === 'not-attempted')).toBe(true);
    for (const e of world.fleet.hosts) expect(e.host.profileGeneration().storePath).toMatch(/-seed-2$/);
  } finally {
    await world.stop();
  }
}, 600_000);
