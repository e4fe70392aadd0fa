/**
 * The product's worker as deployed: `workers/main.ts` in its own process (so a test can SIGKILL it),
 * on a world's fleet, GitHub stand-in and Temporal server. Resolves once it polls its task queue.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { WORKER_NODE_FLAGS } from '../../workers/node-flags';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { World } from '../../testkit/world';
import { waitFor, type TestTemporal } from './temporal';

export interface WorkerProcess {
  child: ChildProcess;
  /** Everything it printed so far. */
  output(): string;
}

export async function startWorkerProcess(opts: {
  t: TestTemporal;
  world: World;
  taskQueue: string;
  /** Where its SSH key and known_hosts files go (one pair per tag). */
  dir: string;
  tag: string;
  /** Added to (or overriding) the worker's environment, e.g. NIXFLEET_AUDIT_DB. */
  env?: Record<string, string>;
  /** The test's set of live worker processes (each leaves it when it exits). */
  track: Set<ChildProcess>;
  startTimeoutMs?: number;
}): Promise<WorkerProcess> {
  const { t, world: w, dir, tag } = opts;
  const keyFile = join(dir, `${tag}.key`);
  const knownHosts = join(dir, `${tag}.known_hosts`);
  writeFileSync(keyFile, w.fleet.clientPrivateKey, { mode: 0o600 });
  writeFileSync(knownHosts, w.fleet.knownHosts);
  const child = spawn(process.execPath, [...WORKER_NODE_FLAGS, '--require', 'tsx/cjs', join(__dirname, '..', '..', 'workers', 'main.ts')], {
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: t.server.address,
      TEMPORAL_NAMESPACE: t.server.namespace,
      TEMPORAL_TASK_QUEUE: opts.taskQueue,
      GITHUB_API_URL: w.github.baseUrl,
      GITHUB_TOKEN: w.token,
      NIXFLEET_SSH_KEY: keyFile,
      NIXFLEET_KNOWN_HOSTS: knownHosts,
      LOG_LEVEL: 'info',
      ...opts.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  opts.track.add(child);
  child.once('exit', () => opts.track.delete(child));
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor(
    `worker ${tag} to start`,
    () => {
      if (child.exitCode !== null) throw new Error(`worker exited ${child.exitCode}: ${out}`);
      return out.includes('worker started') ? true : undefined;
    },
    opts.startTimeoutMs ?? 150_000,
    200,
  );
  return { child, output: () => out };
}
