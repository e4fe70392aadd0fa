/**
 * The saga suites on Temporal's time-skipping test server (tests/saga/windows, start-now-signal,
 * notify-targets): one environment per file (testkit/time-skipping.ts finds the server), a stand-in
 * world per test, stopped after it with the GitHub stand-in's validation failures checked, and a
 * deployment run on a real deploy worker. Call `timeSkippingHarness()` at the top of the file: it
 * registers the jest hooks.
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowHandle } from '@temporalio/client';
import type { ActivityDeps } from '../../activities';
import type { DeployInput } from '../../src/domain/deployment';
import { timeSkippingServer } from '../../testkit/time-skipping';
import type { World, WorldOptions } from '../../testkit/world';
import { createDeployWorker } from '../../workers/worker';
import { deployWorkflow } from '../../workflows';
import { worldPerTest } from './saga';
import { taskQueueFor, workflowBundle } from './temporal';

export type DeployHandle = WorkflowHandle<typeof deployWorkflow>;

export interface TimeSkippingHarness {
  /** The file's environment (set once beforeAll has run). */
  readonly env: TestWorkflowEnvironment;
  /** A stand-in world for this test, stopped after it (its GitHub stand-in must have seen no invalid request). */
  world(opts: WorldOptions): Promise<World>;
  /**
   * Starts `input`'s deployment on a deploy worker of its own task queue (named after `title`) with
   * `w`'s activities (`deps` added), runs `fn` while the worker runs, then closes the worker.
   */
  deploy(w: World, title: string, input: DeployInput, fn: (handle: DeployHandle) => Promise<void>, deps?: Partial<ActivityDeps>): Promise<void>;
}

export function timeSkippingHarness(): TimeSkippingHarness {
  let env: TestWorkflowEnvironment | undefined;
  const worlds = worldPerTest();
  beforeAll(async () => {
    env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: timeSkippingServer() } } });
  }, 120_000);
  afterAll(async () => {
    await env?.teardown();
  });
  const envOf = (): TestWorkflowEnvironment => {
    if (!env) throw new Error('the time-skipping environment is not started (call timeSkippingHarness() at the top of the test file)');
    return env;
  };
  return {
    get env() {
      return envOf();
    },
    world: (opts) => worlds.start(opts),
    async deploy(w, title, input, fn, deps = {}) {
      const e = envOf();
      const taskQueue = taskQueueFor(title);
      const { worker, close } = await createDeployWorker({ connection: e.nativeConnection, namespace: e.namespace ?? 'default', taskQueue, deps: { ...w.activityDeps(), ...deps }, workflowBundle: await workflowBundle() });
      try {
        await worker.runUntil(async () => {
          const handle = await e.client.workflow.start(deployWorkflow, { taskQueue, workflowId: input.deploymentId, args: [input] });
          await fn(handle);
        });
      } finally {
        await close();
      }
    },
  };
}
