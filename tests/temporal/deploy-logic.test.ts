/**
 * The saga's control flow on the real Temporal dev server, with in-memory activities standing in for
 * hosts and GitHub. The same flows run against real sshd hosts and the git-backed GitHub stand-in in
 * tests/saga; these exist to pin the ordering rules cheaply.
 */
import { Worker } from '@temporalio/worker';
import type { DeployActivities } from '../../src/domain/activities';
import { deployWorkflow } from '../../workflows';
import { rollbackPreviewQuery, rollbackSignal, rollbackUpdate, statusQuery } from '../../workflows/messages';
import { defaultRollout } from '../../src/domain/rollout';
import { fakeInput as input, fakeWorld } from '../support/fake-activities';
import { startTestTemporal, taskQueueFor, waitFor, workflowBundle, type TestTemporal } from '../support/temporal';

let t: TestTemporal;
beforeAll(async () => {
  t = await startTestTemporal();
});
afterAll(async () => {
  await t?.stop();
});

/** The validator's message from a rejected update (the client wraps it in WorkflowUpdateFailedError). */
async function rejection(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    const cause = (err as { cause?: Error }).cause;
    return `${(err as Error).message}: ${cause?.message ?? ''}`;
  }
  throw new Error('expected the update to be rejected');
}

async function withWorker<T>(title: string, activities: DeployActivities, fn: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = taskQueueFor(title);
  const worker = await Worker.create({ connection: t.nativeConnection, namespace: t.server.namespace, taskQueue, workflowBundle: await workflowBundle(), activities });
  return worker.runUntil(fn(taskQueue));
}

test('when host 3 of 5 fails, then 4 and 5 are never contacted and 3..1 roll back in reverse order', async () => {
  const names = ['h1', 'h2', 'h3', 'h4', 'h5'];
  const w = fakeWorld(names);
  w.hosts.get('h3')!.failActivation = true;
  await withWorker(expect.getState().currentTestName!, w.activities, async (taskQueue) => {
    const inp = input(names);
    const handle = await t.client.workflow.start(deployWorkflow, { taskQueue, workflowId: inp.deploymentId, args: [inp] });
    const status = await waitFor('awaiting-operator', async () => {
      const s = await handle.query(statusQuery);
      return s.phase === 'awaiting-operator' ? s : undefined;
    });
    expect(w.calls.filter((c) => c.includes('h4') || c.includes('h5'))).toEqual([]);
    // The rollbacks in reverse order; the merge's revert once, beside them (src/domain/compensation-plan.ts),
    // so its place among the rollbacks' calls is not fixed (tests/saga/b-speed-compensate-together).
    expect(w.calls.filter((c) => c.startsWith('rollback'))).toEqual(['rollback:h3:42', 'rollback:h2:42', 'rollback:h1:42']);
    expect(w.calls.filter((c) => c.startsWith('revert'))).toEqual(['revert:commit:nixfleet (automatic)']);
    expect(status.hosts.map((h) => h.state)).toEqual(['rolled-back', 'rolled-back', 'rolled-back', 'not-attempted', 'not-attempted']);
    expect(status.outcome).toBe('failed-rolled-back');
    expect(status.failedHost).toBe('h3');
    // Nothing left to undo: only dismiss applies.
    const preview = await handle.query(rollbackPreviewQuery);
    expect(preview.allowed).toEqual(['dismiss']);
    expect(await rejection(handle.executeUpdate(rollbackUpdate, { args: [{ action: 'revert-and-rollback', requestedBy: 'bob' }] }))).toMatch(/no longer applies/);
    await handle.signal(rollbackSignal, { action: 'dismiss', requestedBy: 'bob' });
    const final = await handle.result();
    expect(final.phase).toBe('closed');
    expect(final.audit.map((a) => `${a.actor}:${a.action}`)).toEqual(['alice:deploy', 'alice:merge', 'nixfleet (automatic):auto-compensate', 'bob:dismiss']);
  });
});

test('when compensation is off, then the operator rolls back through the update and the outcome comes back', async () => {
  const names = ['h1', 'h2', 'h3'];
  const w = fakeWorld(names);
  w.hosts.get('h2')!.failActivation = true;
  await withWorker(expect.getState().currentTestName!, w.activities, async (taskQueue) => {
    const inp = input(names, { onFailure: { revert: 'off', rollbackHosts: false } });
    const handle = await t.client.workflow.start(deployWorkflow, { taskQueue, workflowId: inp.deploymentId, args: [inp] });
    await waitFor('awaiting-operator', async () => ((await handle.query(statusQuery)).phase === 'awaiting-operator' ? true : undefined));
    expect(w.calls.some((c) => c.startsWith('rollback') || c.startsWith('revert'))).toBe(false);
    const preview = await handle.query(rollbackPreviewQuery);
    expect(preview.hosts.map((h) => [h.name, h.to.number])).toEqual([['h2', 42], ['h1', 42]]);
    expect(preview.allowed).toEqual(['revert', 'revert-and-rollback', 'dismiss']);
    expect(await rejection(handle.executeUpdate(rollbackUpdate, { args: [{ action: 'revert', requestedBy: '' }] }))).toMatch(/requestedBy/);
    const outcome = await handle.executeUpdate(rollbackUpdate, { args: [{ action: 'revert-and-rollback', requestedBy: 'carol' }] });
    expect(outcome.accepted).toBe(true);
    expect(outcome.status.hosts.map((h) => h.state)).toEqual(['rolled-back', 'rolled-back', 'not-attempted']);
    const final = await handle.result();
    expect(final.outcome).toBe('failed-rolled-back');
    expect(final.audit.at(-1)).toMatchObject({ actor: 'carol', action: 'revert-and-rollback', hosts: ['h2', 'h1'], reverted: 'b'.repeat(40) });
  });
});

test('when every host switches, then the deployment succeeds with no compensation (and says which host booted another kernel)', async () => {
  const names = ['h1', 'h2'];
  const w = fakeWorld(names);
  // h2 still runs the kernel it booted with before: its switch needs a reboot to take full effect.
  w.hosts.get('h2')!.bootedSystem = '/nix/store/h2-old';
  await withWorker(expect.getState().currentTestName!, w.activities, async (taskQueue) => {
    const inp = input(names);
    const final = await t.client.workflow.execute(deployWorkflow, { taskQueue, workflowId: inp.deploymentId, args: [inp] });
    expect(final.outcome).toBe('succeeded');
    expect(final.hosts.map((h) => [h.state, h.before?.number, h.after?.number])).toEqual([['switched', 42, 43], ['switched', 42, 43]]);
    expect(final.hosts.map((h) => h.reboot)).toEqual([{ needed: false }, { needed: true, differs: ['kernel', 'initrd', 'kernelModules'] }]);
  });
});

test('when the build-first child is terminated, then nothing is switched and the deployment still compensates its merge and waits for the operator', async () => {
  const names = ['h1', 'h2'];
  const w = fakeWorld(names);
  let release: () => void = () => undefined;
  const held = new Promise<void>((r) => (release = r));
  const activities = { ...w.activities, buildHost: async ({ host }: { host: { name: string } }) => { w.calls.push(`build:${host.name}`); await held; return { target: `/nix/store/${host.name}-new` }; } };
  await withWorker(expect.getState().currentTestName!, activities as typeof w.activities, async (taskQueue) => {
    const inp = input(names, { rollout: { ...defaultRollout(names), buildFirst: true } });
    const handle = await t.client.workflow.start(deployWorkflow, { taskQueue, workflowId: inp.deploymentId, args: [inp] });
    await waitFor('a build to start', () => (w.calls.some((c) => c.startsWith('build:')) ? true : undefined));
    await t.client.workflow.getHandle(`${inp.deploymentId}-build`).terminate('killed by a test');
    const s = await waitFor('awaiting-operator', async () => {
      const x = await handle.query(statusQuery);
      return x.phase === 'awaiting-operator' ? x : undefined;
    });
    release();
    expect(s.failure).toMatch(/^the build failed on h1, h2; no host was switched: the build workflow ended without its result/);
    expect(w.calls.filter((c) => c.startsWith('switch') || c.startsWith('rollback'))).toEqual([]);
    expect(w.calls).toContain('revert:commit:nixfleet (automatic)');
    expect(s.hosts.map((h) => h.state)).toEqual(['not-attempted', 'not-attempted']);
    expect(s.outcome).toBe('failed-rolled-back');
    await handle.signal(rollbackSignal, { action: 'dismiss', requestedBy: 'bob' });
    await handle.result();
  });
});
