/**
 * The smoke path through every real part: a worker on the real Temporal dev server runs a workflow
 * whose activities read a stand-in host's generation over SSH (ssh2, real sshd, real Nix profile) and
 * read a pull request from the git-backed GitHub stand-in (OpenAPI-checked).
 */
import { smokeWorkflow } from '../../workflows';
import { createDeployWorker } from '../../workers/worker';
import { startWorld, type World } from '../../testkit/world';
import { saveHistory } from '../support/saga';
import { startTestTemporal, taskQueueFor, workflowBundle, type TestTemporal } from '../support/temporal';

let t: TestTemporal;
let world: World;
beforeAll(async () => {
  t = await startTestTemporal();
  world = await startWorld({ hosts: [{ name: 'smoke0', kind: 'nixos', generations: [40, 41, 42] }] });
});
afterAll(async () => {
  await world?.stop();
  await t?.stop();
});

test('a workflow reads a host generation over SSH and a pull request from the GitHub stand-in', async () => {
  const pr = await world.openLockUpdate('v2');
  const host = world.fleet.host('smoke0');
  const taskQueue = taskQueueFor('smoke');
  const { worker, close } = await createDeployWorker({
    connection: t.nativeConnection,
    namespace: t.server.namespace,
    taskQueue,
    deps: world.activityDeps(),
    workflowBundle: await workflowBundle(),
  });
  const handle = await t.client.workflow.start(smokeWorkflow, {
      taskQueue,
      workflowId: `smoke-${Date.now()}`,
      args: [
        {
          host: { name: host.name, address: host.address, port: host.port, user: host.user, kind: 'nixos', attr: host.name },
          repository: { owner: world.owner, name: world.repo, branch: world.branch },
          pullRequest: pr.number,
        },
      ],
  });
  const result = await worker.runUntil(handle.result());
  await close();
  await saveHistory(handle, "smoke");
  const truth = await host.profileGeneration();
  expect(result.generation).toEqual({ number: 42, storePath: truth.storePath });
  expect(truth.number).toBe(42);
  expect(result.pullRequest).toEqual({ number: pr.number, headSha: pr.headSha, state: 'open', merged: false });
  // The request really went through the stand-in and passed the OpenAPI check.
  expect(world.github.countRequests('GET', /\/pulls\/\d+$/)).toBeGreaterThanOrEqual(1);
  expect(world.github.validationFailures).toEqual([]);
});
