/**
 * One idle worker's memory, stage by stage (bench/idle-rss.ts forks it): RSS after node+tsx, after the
 * product's imports, after the SDK runtime and connection, after Worker.create, and after a few
 * seconds of polling. Config in BENCH_IDLE (JSON); the figures go back over IPC.
 */
import { readFileSync } from 'node:fs';

interface Cfg {
  address: string;
  namespace: string;
  taskQueue: string;
  bundleFile: string;
  tuning?: Record<string, unknown>;
  idleMs: number;
}

const mib = (): { rss: number; heap: number; external: number } => {
  const m = process.memoryUsage();
  return { rss: m.rss / 2 ** 20, heap: m.heapUsed / 2 ** 20, external: m.external / 2 ** 20 };
};

async function main(): Promise<void> {
  const cfg = JSON.parse(process.env.BENCH_IDLE as string) as Cfg;
  const stages: Array<{ stage: string; rss: number; heap: number; external: number }> = [];
  const mark = (stage: string): void => {
    stages.push({ stage, ...mib() });
  };
  mark('node + tsx');
  const { DefaultLogger, NativeConnection, Runtime } = await import('@temporalio/worker');
  mark('+ @temporalio/worker loaded');
  const { createDeployWorker } = await import('../workers/worker');
  const { createGitHub } = await import('../src/github');
  const pino = (await import('pino')).default;
  mark('+ the product (activities, ssh2, Octokit, pino)');
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const connection = await NativeConnection.connect({ address: cfg.address });
  mark('+ SDK core runtime + connection');
  const log = pino({ level: 'silent' });
  const { worker, close } = await createDeployWorker({
    connection,
    namespace: cfg.namespace,
    taskQueue: cfg.taskQueue,
    deps: { github: createGitHub({ baseUrl: 'http://127.0.0.1:9', token: 'x', log }), ssh: { privateKey: Buffer.from(''), knownHosts: '' }, logger: log },
    workflowBundle: { code: readFileSync(cfg.bundleFile, 'utf8'), sourceMap: '' },
    ...(cfg.tuning ? { tuning: cfg.tuning } : {}),
  });
  mark('+ Worker.create (workflow thread, bundle loaded)');
  const running = worker.run();
  await new Promise((r) => setTimeout(r, cfg.idleMs));
  mark(`+ ${cfg.idleMs / 1000} s polling, idle`);
  global.gc?.();
  mark('after a full GC (--expose-gc)');
  const status = readFileSync('/proc/self/status', 'utf8');
  const threads = Number(/Threads:\s+(\d+)/.exec(status)?.[1]);
  process.send?.({ type: 'ready', stages, threads });
  worker.shutdown();
  await running;
  await close();
  await connection.close();
  process.exit(0);
}

main().catch((err: unknown) => {
  console.error('idle-rss child:', err);
  process.exit(1);
});
