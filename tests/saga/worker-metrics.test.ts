/**
 * The worker process (workers/main.ts, as deployed) with its metrics switched on by the environment:
 * the product's listener (NIXFLEET_METRICS_PORT) and the SDK core's own Prometheus address
 * (NIXFLEET_TEMPORAL_METRICS_ADDRESS), both scraped before and after a deployment.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWorld, type World } from '../../testkit/world';
import { startDeployment, waitPhase } from '../support/saga';
import { startTestTemporal, taskQueueFor, waitFor, type TestTemporal } from '../support/temporal';

let t: TestTemporal;
let world: World | undefined;
let dir: string;
let child: ChildProcess | undefined;
beforeAll(async () => {
  t = await startTestTemporal();
  dir = mkdtempSync(join(tmpdir(), 'nixfleet-metrics-'));
});
afterAll(async () => {
  child?.kill('SIGKILL');
  await world?.stop();
  await t?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });

/** Sum of a metric's series whose labels include `labels`. */
function value(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-zA-Z_]+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}
const scrape = async (url: string): Promise<string> => {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  return res.text();
};

test('with NIXFLEET_METRICS_PORT and NIXFLEET_TEMPORAL_METRICS_ADDRESS, the worker serves its own and the SDK core metrics, and both move during a deployment', async () => {
  const w = (world = await startWorld({ hosts: [{ name: 'q1', kind: 'nixos' as const }] }));
  const taskQueue = taskQueueFor('worker-metrics');
  const [port, corePort] = [await freePort(), await freePort()];
  writeFileSync(join(dir, 'id_ed25519'), w.fleet.clientPrivateKey, { mode: 0o600 });
  writeFileSync(join(dir, 'known_hosts'), w.fleet.knownHosts);
  child = spawn(process.execPath, ['--require', 'tsx/cjs', join(__dirname, '..', '..', 'workers', 'main.ts')], {
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: t.server.address,
      TEMPORAL_NAMESPACE: t.server.namespace,
      TEMPORAL_TASK_QUEUE: taskQueue,
      GITHUB_API_URL: w.github.baseUrl,
      GITHUB_TOKEN: w.token,
      NIXFLEET_SSH_KEY: join(dir, 'id_ed25519'),
      NIXFLEET_KNOWN_HOSTS: join(dir, 'known_hosts'),
      NIXFLEET_AUDIT_DB: join(dir, 'audit.db'),
      NIXFLEET_METRICS_PORT: String(port),
      NIXFLEET_TEMPORAL_METRICS_ADDRESS: `127.0.0.1:${corePort}`,
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const proc = child;
  await waitFor('the worker process to start', () => {
    if (proc.exitCode !== null) throw new Error(`worker exited ${proc.exitCode}: ${out}`);
    return out.includes('worker started') ? true : undefined;
  }, 60_000);
  const product = `http://127.0.0.1:${port}/metrics`;
  const core = `http://127.0.0.1:${corePort}/metrics`;
  expect(out).toContain(product);

  const before = await scrape(product);
  const coreBefore = await scrape(core);
  const pr = await w.openLockUpdate('v2');
  const handle = await startDeployment(t, w, taskQueue, { pr: pr.number });
  const s = await waitPhase(handle, ['succeeded', 'awaiting-operator'], 120_000);
  expect(s.hosts.map((h) => `${h.name}:${h.state}`)).toEqual(['q1:switched']);

  const after = await scrape(product);
  expect(value(after, 'nixfleet_host_step_duration_seconds_count', { step: 'switchHost', host_kind: 'nixos', result: 'ok' }) - value(before, 'nixfleet_host_step_duration_seconds_count', { step: 'switchHost', host_kind: 'nixos', result: 'ok' })).toBe(1);
  expect(value(after, 'nixfleet_activity_attempts_total', { activity: 'resolveChange', result: 'ok' }) - value(before, 'nixfleet_activity_attempts_total', { activity: 'resolveChange', result: 'ok' })).toBe(1);
  expect(value(after, 'nixfleet_worker_process_cpu_seconds_total')).toBeGreaterThan(0);
  // The SDK core counted this worker's activity executions on its own address.
  const coreAfter = await waitFor('the core metrics to show the activities', async () => {
    const text = await scrape(core);
    return value(text, 'temporal_activity_execution_latency_count', { task_queue: taskQueue }) > value(coreBefore, 'temporal_activity_execution_latency_count', { task_queue: taskQueue }) ? text : undefined;
  }, 30_000, 250);
  expect(value(coreAfter, 'temporal_workflow_task_execution_latency_count', { task_queue: taskQueue })).toBeGreaterThan(0);
});
