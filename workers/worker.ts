import { Runtime, Worker, bundleWorkflowCode, type InjectedSinks, type NativeConnection, type WorkerOptions, type WorkflowBundleOption } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from '../activities';
import type { WorkerMetrics } from '../src/metrics';
import type { DeployerSinks } from '../workflows/sinks';
import { slimWorkflowBundle } from './bundle';

export interface DeployWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  deps: ActivityDeps;
  /** A prebuilt bundle (tests build it once; `npm run build` writes one to a file); otherwise the worker bundles workflows/ at start (slimmed: workers/bundle.ts). */
  workflowBundle?: WorkflowBundleOption;
  maxConcurrentActivityTaskExecutions?: number;
  /** The product's metrics: activity attempts, host step durations, rollbacks, reverts, SSH connections. */
  metrics?: WorkerMetrics;
  /** Poller counts, workflow cache and sticky-queue settings (the bench's experiments); omitted: the SDK's defaults. */
  tuning?: WorkerTuning;
}

/** The worker options the bench varies (bench/experiments.ts); see BENCHMARKS.md for what each changed. */
export type WorkerTuning = Pick<
  WorkerOptions,
  'maxConcurrentWorkflowTaskPolls' | 'maxConcurrentActivityTaskPolls' | 'maxCachedWorkflows' | 'stickyQueueScheduleToStartTimeout' | 'enableNonLocalActivities' | 'maxConcurrentWorkflowTaskExecutions'
>;

/** A worker for the deploy workflows and their activities. `close()` after the worker has stopped. */
export async function createDeployWorker(opts: DeployWorkerOptions): Promise<{ worker: Worker; close(): Promise<void> }> {
  const concurrency = opts.maxConcurrentActivityTaskExecutions ?? 50;
  // The SSH pool's bound follows the worker's activity concurrency (a host step holds one connection).
  const deps = { ...opts.deps, ssh: { maxConnections: concurrency + 4, ...opts.deps.ssh } };
  const { activities, close, openSshConnections } = createActivities(deps);
  opts.metrics?.watchSshConnections(openSshConnections);
  const worker = await Worker.create({
    connection: opts.connection,
    namespace: opts.namespace,
    taskQueue: opts.taskQueue,
    // Bundled here rather than by Worker.create (workflowsPath), so the worker loads it slimmed (workers/bundle.ts).
    workflowBundle: opts.workflowBundle ?? { code: slimWorkflowBundle((await bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), logger: Runtime.instance().logger })).code) },
    activities,
    ...(opts.metrics ? { interceptors: { activity: [opts.metrics.activityInterceptor] } } : {}),
    // Always registered (a workflow calling an unregistered sink gets a warning); not called on replay.
    sinks: { deployments: { closed: { fn: (_info, outcome: string) => opts.metrics?.deploymentClosed(outcome), callDuringReplay: false } } } satisfies InjectedSinks<DeployerSinks>,
    maxConcurrentActivityTaskExecutions: concurrency,
    ...opts.tuning,
  });
  return { worker, close };
}
