/**
 * The worker in its own process (so its peak RSS is its own): the product's createDeployWorker with the
 * real activities, over the stand-in world's GitHub and SSH credentials. Config in BENCH_WORKER (JSON).
 * Reports {type:'ready', ...timings} over IPC, stops on {type:'stop'}.
 *   mode 'bundle': the prebuilt workflow bundle (built once by the bench, as the tests do);
 *   mode 'path':   workflowsPath, i.e. what workers/main.ts does: bundle at every worker start.
 */
const processStartMs = performance.timeOrigin;
const importStartMs = Date.now();
import { readFileSync } from 'node:fs';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import pino from 'pino';
import { createGitHub } from '../src/github';
import { createDeployWorker, type WorkerTuning } from '../workers/worker';

export interface WorkerChildConfig {
  mode: 'bundle' | 'path';
  bundleFile?: string;
  address: string;
  namespace: string;
  taskQueue: string;
  githubUrl: string;
  githubToken: string;
  keyFile: string;
  knownHostsFile: string;
  /** worker options under experiment (bench/experiments.ts) */
  tuning?: WorkerTuning;
  /** activity slots (default: the product's 50); the SSH pool's bound follows it */
  activitySlots?: number;
  /** the worker's log level and file (default: silent) */
  logLevel?: string;
  logFile?: string;
}

async function main(): Promise<void> {
  const cfg = JSON.parse(process.env.BENCH_WORKER as string) as WorkerChildConfig;
  const importsDoneMs = Date.now();
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const log = cfg.logLevel && cfg.logFile ? pino({ level: cfg.logLevel }, pino.destination(cfg.logFile)) : pino({ level: 'silent' });
  const t0 = Date.now();
  const connection = await NativeConnection.connect({ address: cfg.address });
  const connectedMs = Date.now();
  const { worker, close } = await createDeployWorker({
    connection,
    namespace: cfg.namespace,
    taskQueue: cfg.taskQueue,
    // The product's defaults (workers/main.ts): keepalive 5 s, heartbeat 5 s, ready timeout 10 s.
    deps: {
      github: createGitHub({ baseUrl: cfg.githubUrl, token: cfg.githubToken, log }),
      ssh: { privateKey: readFileSync(cfg.keyFile), knownHosts: readFileSync(cfg.knownHostsFile, 'utf8') },
      logger: log,
    },
    ...(cfg.tuning ? { tuning: cfg.tuning } : {}),
    ...(cfg.activitySlots ? { maxConcurrentActivityTaskExecutions: cfg.activitySlots } : {}),
    ...(cfg.mode === 'bundle' ? { workflowBundle: { code: readFileSync(cfg.bundleFile as string, 'utf8'), sourceMap: '' } } : {}),
  });
  const createdMs = Date.now();
  const running = worker.run();
  process.send?.({
    type: 'ready',
    processStartMs,
    importStartMs,
    importsMs: importsDoneMs - processStartMs,
    connectMs: connectedMs - t0,
    createMs: createdMs - connectedMs,
    readyAtMs: Date.now(),
  });
  process.on('message', (m: { type?: string }) => {
    if (m?.type === 'stop') worker.shutdown();
  });
  process.on('disconnect', () => worker.getState() === 'RUNNING' && worker.shutdown());
  await running;
  await close();
  await connection.close();
  process.exit(0);
}

main().catch((err: unknown) => {
  console.error('bench worker:', err);
  process.exit(1);
});
