/**
 * The real stack for one fault/property/security test file: the Temporal dev server (SQLite), the
 * stand-in world (GitHub stand-in + sshd/Nix hosts, with the forced-command allowlist on), and an
 * in-process worker with the real activities whose logs are captured for scanning.
 */
import { Writable } from 'node:stream';
import { Worker } from '@temporalio/worker';
import pino from 'pino';
import { createActivities, type ActivityDeps } from '../../activities';
import { startWorld, type World, type WorldOptions } from '../../testkit/world';
import { taskQueueFor, workflowBundle, type TestTemporal } from '../support/temporal';

export interface RunningWorker {
  taskQueue: string;
  /** Everything the worker's logger wrote (JSON lines, level debug). */
  logs(): string;
  stop(): Promise<void>;
}

/** Starts a world whose hosts are restricted by deploy/nixfleet-allowlist.sh. */
export async function startAllowlistedWorld(opts: WorldOptions): Promise<World> {
  const prev = process.env.NIXFLEET_STANDIN_ALLOWLIST;
  process.env.NIXFLEET_STANDIN_ALLOWLIST = '1';
  try {
    return await startWorld(opts);
  } finally {
    if (prev === undefined) delete process.env.NIXFLEET_STANDIN_ALLOWLIST;
    else process.env.NIXFLEET_STANDIN_ALLOWLIST = prev;
  }
}

export async function startInProcessWorker(t: TestTemporal, world: World, title: string, adjust?: (deps: ActivityDeps) => ActivityDeps): Promise<RunningWorker> {
  let captured = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      captured += chunk.toString();
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  const deps = adjust ? adjust(world.activityDeps(logger)) : world.activityDeps(logger);
  const { activities, close } = createActivities(deps);
  const taskQueue = taskQueueFor(title);
  const worker = await Worker.create({ connection: t.nativeConnection, namespace: t.server.namespace, taskQueue, workflowBundle: await workflowBundle(), activities });
  const running = worker.run();
  return {
    taskQueue,
    logs: () => captured,
    async stop() {
      worker.shutdown();
      await running;
      await close();
    },
  };
}
