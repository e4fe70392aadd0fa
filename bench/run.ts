/**
 * The benchmark command (issue 7): `npx tsx bench/run.ts [--quick] [--out BENCHMARKS.md]`.
 *
 * What the orchestration costs on top of the SSH commands, on this machine: the real Temporal dev
 * server, the product's worker (real activities, in a child process) and API (child process), the
 * GitHub stand-in and a stand-in fleet of real sshd + Nix hosts on loopback addresses. Every figure is
 * a median over repeated runs with its min–max. Prints the table and writes BENCHMARKS.md.
 * Not part of the test suite. Everything it starts is stopped at the end (and on Ctrl-C).
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, Runtime, bundleWorkflowCode } from '@temporalio/worker';
import { HostSession } from '../src/hosts';
import type { DeploymentStatus, Generation, HostSpec } from '../src/domain/deployment';
import { fillFlakeRef } from '../src/domain/flake-ref';
import { startDevServer, TEMPORAL_CLI_VERSION, type DevServer } from '../testkit/dev-server';
import { startWorld, type World } from '../testkit/world';
import { slimWorkflowBundle } from '../workers/bundle';
import { WORKER_NODE_FLAGS } from '../workers/node-flags';
import { startChild, type Child } from './lib/children';
import { rssOf } from './lib/proc';
import { experimentsSection } from './lib/markdown';
import { fetchDeploymentHistories, largestChild, summarize, type ActivityTiming, type HistorySummary } from './lib/history';
import { fmt, linearFit, num, stat, type Stat } from './lib/stats';
import type { FleetFile } from '../src/schemas/fleet.schema';
import type { WorkerChildConfig } from './worker-child';
import type { BenchDeployInput, BenchRollbackInput, DeployVariant } from './workflows';

const execFileP = promisify(execFile);
const { values: argv } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    /** the long run (~30 min on 2 cores): more repeats, N=50 and 200 */
    long: { type: 'boolean', default: false },
    out: { type: 'string', default: resolve(__dirname, '..', 'BENCHMARKS.md') },
    'no-write': { type: 'boolean', default: false },
    /** re-render BENCHMARKS.md from the raw results of an earlier run (saved in .nixfleet/bench/) */
    render: { type: 'string' },
    /** development only: tiny sizes, to check the command end to end in a minute */
    smoke: { type: 'boolean', default: false },
  },
});
const quick = argv.quick as boolean;

/**
 * Sizes and repeats. The default (`npm run bench`) measures the targets of issue 14 (10-host deployment
 * against the three OpenSSH loops, halt latency, worker RSS through 100 hosts and across 20 back-to-back
 * deployments of 3 hosts) and skips the product-rollback comparison: ~12 min on 2 idle cores, ~30 min
 * under a load of 20; --quick is smaller; --long (~60 min) has more repeats, N=50/200 and the rollbacks.
 */
const PLAN = argv.smoke
  ? { overhead: [{ n: 3, repeats: 2 }], halt: { n: 3, repeats: 1 }, growth: [3, 6], growthRepeats: 1, rbProduct: { n: 3, repeats: 1 }, variantsN: 3, variantRepeats: 1, bundleRepeats: 1, pathWorkerStarts: 1, rtt: 10, backToBack: { n: 3, runs: 3 } }
  : quick
  ? { overhead: [{ n: 10, repeats: 2 }], halt: { n: 5, repeats: 2 }, growth: [25, 100], growthRepeats: 1, rbProduct: { n: 10, repeats: 1 }, variantsN: 5, variantRepeats: 1, bundleRepeats: 1, pathWorkerStarts: 1, rtt: 20, backToBack: { n: 10, runs: 10 } }
  : argv.long
  ? { overhead: [{ n: 10, repeats: 5 }, { n: 50, repeats: 3 }], halt: { n: 10, repeats: 5 }, growth: [50, 100, 200], growthRepeats: 1, rbProduct: { n: 25, repeats: 2 }, variantsN: 10, variantRepeats: 3, bundleRepeats: 3, pathWorkerStarts: 2, rtt: 50, backToBack: { n: 10, runs: 20 } }
  : { overhead: [{ n: 10, repeats: 2 }], halt: { n: 5, repeats: 2 }, growth: [10, 100], growthMaxParallel: 10, growthRepeats: 1, rbProduct: { n: 10, repeats: 0 }, variantsN: 5, variantRepeats: 1, bundleRepeats: 1, pathWorkerStarts: 1, rtt: 20, backToBack: { n: 3, runs: 20 } };
const MAX_HOSTS = Math.max(...PLAN.growth, ...PLAN.overhead.map((o) => o.n));

const say = (s: string): void => void process.stdout.write(`${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const secs = (ms: number) => ms / 1000;

// ---------------------------------------------------------------------------------------------------
// The world: dev server, stand-in fleet + GitHub, worker and API children.

interface Ctx {
  dir: string;
  server: DevServer;
  client: Client;
  connection: Connection;
  world: World;
  names: string[];
  keyFile: string;
  knownHostsFile: string;
  bundleFile: string;
  apiToken: string;
  worker?: Child<WorkerReady>;
  api?: Child<{ port: number }>;
  taskQueue: string;
  versionSeq: number;
}
interface WorkerReady {
  importsMs: number;
  connectMs: number;
  createMs: number;
}

const workerStarts: { mode: 'bundle' | 'path'; forkToReadyMs: number; createMs: number }[] = [];

async function startWorker(ctx: Ctx, mode: 'bundle' | 'path' = 'bundle'): Promise<Child<WorkerReady>> {
  const cfg: WorkerChildConfig = {
    mode,
    bundleFile: ctx.bundleFile,
    address: ctx.server.address,
    namespace: ctx.server.namespace,
    taskQueue: ctx.taskQueue,
    githubUrl: ctx.world.github.baseUrl,
    githubToken: ctx.world.token,
    keyFile: ctx.keyFile,
    knownHostsFile: ctx.knownHostsFile,
  };
  // With the product's worker flags (workers/node-flags.ts), as package.json and the Dockerfile run it.
  const w = await startChild<WorkerReady>('worker-child.ts', { BENCH_WORKER: JSON.stringify(cfg), NODE_OPTIONS: WORKER_NODE_FLAGS.join(' ') });
  workerStarts.push({ mode, forkToReadyMs: w.startMs, createMs: w.ready.createMs });
  return w;
}

async function freshProcesses(ctx: Ctx): Promise<void> {
  await Promise.all([ctx.worker?.stop(), ctx.api?.stop()]);
  ctx.worker = await startWorker(ctx);
  ctx.api = await startChild<{ port: number }>('api-child.ts', {
    BENCH_API: JSON.stringify({ address: ctx.server.address, namespace: ctx.server.namespace, taskQueue: ctx.taskQueue, token: ctx.apiToken }),
  });
}

const logins = (ctx: Ctx, name: string): number => (ctx.world.fleet.host(name).sshdLog().match(/Accepted publickey/g) ?? []).length;
const hostSpec = (ctx: Ctx, name: string): HostSpec => {
  const h = ctx.world.fleet.host(name);
  return { name: h.name, address: h.address, port: h.port, user: h.user, kind: h.kind, attr: h.name };
};
const nextVersion = (ctx: Ctx): string => `b${++ctx.versionSeq}`;

// ---------------------------------------------------------------------------------------------------
// One deployment through the product: POST to the API, poll its status like the CLI does (500 ms).

interface ProductRun {
  n: number;
  clientMs: number;
  /** parent + wave/build children: all activities; the wave children's workflow tasks */
  h: HistorySummary;
  /** the parent execution's history (events, bytes) */
  historyLength: number;
  historyBytes: number;
  /** the largest child execution's history (events, bytes); NaN when there was none */
  childEvents: number;
  childBytes: number;
  /** wave/build children read (the fleet lock not counted) */
  children: number;
  status: DeploymentStatus;
  loginsPerHost: number[];
  /** first host step scheduled → last host step closed (server clock) */
  hostsMs: number;
  startedAtMs: number;
  pollErrors: number;
}

async function productDeploy(ctx: Ctx, names: string[], opts: { failHost?: string; poll?: boolean; maxParallel?: number } = {}): Promise<ProductRun> {
  const { world } = ctx;
  const version = nextVersion(ctx);
  const pr = await world.openLockUpdate(version);
  if (opts.failHost) world.fleet.host(opts.failHost).failActivation('units', { onlyVersion: version });
  // Default rollout (one wave of all hosts, maxParallel 1) unless maxParallel is given.
  const fleet = world.fleetFile({ revert: 'commit', rollbackHosts: true }, names, opts.maxParallel ? ({ waves: [{ name: 'all', hosts: names, maxParallel: opts.maxParallel, bake: 0 }] } as FleetFile['rollout']) : undefined);
  fleet.manualWindow = 0;
  const loginsBefore = names.map((n) => logins(ctx, n));
  const api = `http://127.0.0.1:${ctx.api?.ready.port}`;
  const headers = { authorization: `Bearer ${ctx.apiToken}`, 'content-type': 'application/json' };
  const startedAtMs = Date.now();
  const t0 = performance.now();
  const res = await fetch(`${api}/api/deployments`, { method: 'POST', headers, body: JSON.stringify({ fleet, change: { pullRequest: pr.number } }) });
  if (res.status !== 201) throw new Error(`POST /api/deployments: ${res.status} ${await res.text()}`);
  const { deploymentId } = (await res.json()) as { deploymentId: string };
  let done = false;
  let pollErrors = 0;
  const poller = (async () => {
    while (!done && opts.poll !== false) {
      const r = await fetch(`${api}/api/deployments/${deploymentId}`, { headers }).catch(() => undefined);
      if (!r || r.status !== 200) pollErrors += 1;
      await r?.arrayBuffer();
      await sleep(500);
    }
  })();
  const handle = ctx.client.workflow.getHandle(deploymentId);
  let status: DeploymentStatus;
  try {
    status = (await handle.result()) as DeploymentStatus;
  } finally {
    done = true;
    await poller;
  }
  const clientMs = performance.now() - t0;
  if (opts.failHost) world.fleet.host(opts.failHost).failActivation(false);
  // The parent and its wave/build children (not the fleet lock): Temporal's limits apply per execution.
  const d = await fetchDeploymentHistories(ctx.client, deploymentId);
  const h = d.merged;
  const big = largestChild(d);
  const hostActs = h.activities.filter((a) => ['recordGeneration', 'switchHost', 'verifyHost'].includes(a.name));
  const hostsMs = Math.max(...hostActs.map((a) => a.closed)) - Math.min(...hostActs.map((a) => a.scheduled));
  if (!opts.failHost && status.outcome !== 'succeeded') throw new Error(`deployment ${deploymentId}: ${status.outcome}: ${status.failure}`);
  return {
    n: names.length,
    clientMs,
    h,
    historyLength: d.parent.events,
    historyBytes: d.parent.bytes,
    childEvents: big?.events ?? NaN,
    childBytes: big?.bytes ?? NaN,
    children: d.children.length,
    status,
    loginsPerHost: names.map((n, i) => logins(ctx, n) - (loginsBefore[i] as number)),
    hostsMs,
    startedAtMs,
    pollErrors,
  };
}

/** Per-host split of the product's time, from the history (server clock). */
function breakdown(run: ProductRun): { schedToStartMs: number; runMs: number; gapMs: number; perActivitySchedToStartMs: number; perGapMs: number; wftQueueMs: number; wftWorkerMs: number; wftPerHost: number } {
  const acts = run.h.activities.filter((a) => ['recordGeneration', 'switchHost', 'verifyHost'].includes(a.name)).sort((a, b) => a.scheduled - b.scheduled);
  let s2s = 0;
  let runMs = 0;
  let gaps = 0;
  acts.forEach((a, i) => {
    s2s += a.started - a.scheduled;
    runMs += a.closed - a.started;
    const next = acts[i + 1];
    if (next) gaps += next.scheduled - a.closed;
  });
  const from = acts[0]?.scheduled ?? 0;
  const to = acts[acts.length - 1]?.closed ?? 0;
  const wfts = run.h.workflowTaskTimings.filter((w) => w.scheduled >= from && w.completed <= to + 1000);
  return {
    schedToStartMs: s2s / run.n,
    runMs: runMs / run.n,
    gapMs: gaps / run.n,
    perActivitySchedToStartMs: s2s / acts.length,
    perGapMs: gaps / Math.max(1, acts.length - 1),
    wftQueueMs: wfts.reduce((a, w) => a + (w.started - w.scheduled), 0) / run.n,
    wftWorkerMs: wfts.reduce((a, w) => a + (w.completed - w.started), 0) / run.n,
    wftPerHost: wfts.length / run.n,
  };
}

// ---------------------------------------------------------------------------------------------------
// The baseline: the same commands with the OpenSSH client in a shell loop.

interface BaselineRun {
  n: number;
  totalMs: number;
  remoteMs: number;
  commands: number;
  loginsPerHost: number[];
}

async function baseline(ctx: Ctx, names: string[], mode: 'plain' | 'mux' | 'mux-persistent'): Promise<BaselineRun> {
  const { world } = ctx;
  const version = nextVersion(ctx);
  const sha = await world.github.pushCommit(world.owner, world.repo, world.branch, { 'flake.lock': (await import('../testkit/fleet')).fleetFlakeLock({ version }) }, `baseline ${version}`);
  const flakeRef = fillFlakeRef(world.flakeRefTemplate, { owner: world.owner, repo: world.repo, sha });
  const hostsFile = join(ctx.dir, `baseline-${version}.hosts`);
  const timing = join(ctx.dir, `baseline-${version}.timing`);
  writeFileSync(hostsFile, names.map((n) => `${n} ${world.fleet.host(n).address} ${world.fleet.host(n).port}`).join('\n') + '\n');
  writeFileSync(timing, '');
  const loginsBefore = names.map((n) => logins(ctx, n));
  const { stdout } = await execFileP('bash', [join(__dirname, 'baseline.sh'), hostsFile, flakeRef, ctx.keyFile, ctx.knownHostsFile, mode, timing], { maxBuffer: 16 << 20 });
  const m = /TOTAL (\S+) (\S+)/.exec(stdout);
  if (!m) throw new Error(`baseline printed ${stdout}`);
  const spans = readFileSync(timing, 'utf8')
    .split('\n')
    .flatMap((l) => [...l.matchAll(/@T (\d+\.\d+) (\d+\.\d+)/g)])
    .map((m) => (Number(m[2]) - Number(m[1])) * 1000);
  return {
    n: names.length,
    totalMs: (Number(m[2]) - Number(m[1])) * 1000,
    remoteMs: spans.reduce((a, b) => a + b, 0),
    commands: spans.length,
    loginsPerHost: names.map((n, i) => logins(ctx, n) - (loginsBefore[i] as number)),
  };
}

// ---------------------------------------------------------------------------------------------------
// Bench workflows over the product's activities (bench/workflows).

async function runBenchWorkflow(ctx: Ctx, type: 'benchRollbackMany' | 'benchDeployHosts', input: BenchRollbackInput | BenchDeployInput): Promise<{ h: HistorySummary; wallMs: number; actsMs: number }> {
  const t0 = performance.now();
  const handle = await ctx.client.workflow.start(type, { taskQueue: ctx.taskQueue, workflowId: `${type}-${randomBytes(4).toString('hex')}`, args: [input] });
  await handle.result();
  const wallMs = performance.now() - t0;
  const h = summarize(await handle.fetchHistory());
  const acts = h.activities;
  const actsMs = acts.length ? Math.max(...acts.map((a) => a.closed)) - Math.min(...acts.map((a) => a.scheduled)) : h.closeMs - h.startMs;
  return { h, wallMs, actsMs };
}

async function rollbackMany(ctx: Ctx, run: ProductRun, parallel: boolean): Promise<{ ms: number; n: number; logins: number[] }> {
  const hosts = run.status.hosts.map((s) => ({ host: hostSpec(ctx, s.name), to: s.before as Generation }));
  const before = hosts.map((x) => logins(ctx, x.host.name));
  const r = await runBenchWorkflow(ctx, 'benchRollbackMany', { deploymentId: run.status.deploymentId, hosts, parallel });
  for (const x of hosts) {
    const g = ctx.world.fleet.host(x.host.name).profileGeneration();
    if (g.number !== x.to.number || ctx.world.fleet.host(x.host.name).currentSystem() !== x.to.storePath) throw new Error(`${x.host.name}: not back on ${x.to.number}`);
  }
  return { ms: r.h.closeMs - r.h.startMs, n: hosts.length, logins: hosts.map((x, i) => logins(ctx, x.host.name) - (before[i] as number)) };
}

async function benchDeploy(ctx: Ctx, names: string[], variant: DeployVariant): Promise<{ perHostMs: number; perHostGapMs: number; perHostS2SMs: number }> {
  const { world } = ctx;
  const version = nextVersion(ctx);
  const { fleetFlakeLock } = await import('../testkit/fleet');
  const sha = await world.github.pushCommit(world.owner, world.repo, world.branch, { 'flake.lock': fleetFlakeLock({ version }) }, `variant ${version}`);
  const flakeRef = fillFlakeRef(world.flakeRefTemplate, { owner: world.owner, repo: world.repo, sha });
  const r = await runBenchWorkflow(ctx, 'benchDeployHosts', { deploymentId: `bench-${version}`, hosts: names.map((n) => hostSpec(ctx, n)), flakeRef, variant });
  const acts = r.h.activities.sort((a, b) => a.scheduled - b.scheduled);
  let gaps = 0;
  acts.forEach((a, i) => {
    const next = acts[i + 1];
    if (next) gaps += next.scheduled - a.closed;
  });
  // Local activities leave no scheduled/started events: time the whole host loop instead.
  const loopMs = r.h.closeMs - r.h.startMs;
  return { perHostMs: loopMs / names.length, perHostGapMs: gaps / names.length, perHostS2SMs: acts.reduce((s, a) => s + (a.started - a.scheduled), 0) / names.length };
}

// ---------------------------------------------------------------------------------------------------
// Costs on the path: SSH round trips, TCP_NODELAY, connection setup.

async function sshCosts(ctx: Ctx): Promise<Record<string, Stat | string>> {
  const h = ctx.world.fleet.host(ctx.names[0] as string);
  const opts = { address: h.address, port: h.port, user: h.user, privateKey: ctx.world.fleet.clientPrivateKey, knownHosts: ctx.world.fleet.knownHosts, label: h.name };
  const time = async (fn: () => Promise<unknown>, n: number): Promise<Stat> => {
    const v: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await fn();
      v.push(performance.now() - t0);
    }
    return stat(v);
  };
  const s = await HostSession.connect(opts);
  try {
    // The socket under the product's HostSession: Node records setNoDelay in a symbol on the socket.
    const sock = (s as unknown as { client: { _sock?: object } }).client?._sock as (object & { setNoDelay(b: boolean): void }) | undefined;
    const sym = sock ? Object.getOwnPropertySymbols(sock).find((x) => x.description === 'kSetNoDelay') : undefined;
    const nodelay = sym ? String((sock as unknown as Record<symbol, unknown>)[sym]) : 'unknown';
    await time(() => s.exec('true'), 5);
    const reused = await time(() => s.exec('true'), PLAN.rtt);
    sock?.setNoDelay(false);
    const reusedNagle = await time(() => s.exec('true'), Math.min(PLAN.rtt, 20));
    sock?.setNoDelay(true);
    const fresh = await time(async () => {
      const f = await HostSession.connect(opts);
      await f.exec('true');
      await f.close();
    }, Math.min(PLAN.rtt, 20));
    const sshArgs = ['-F', '/dev/null', '-i', ctx.keyFile, '-o', 'IdentitiesOnly=yes', '-o', `UserKnownHostsFile=${ctx.knownHostsFile}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-p', String(h.port), `root@${h.address}`, 'true'];
    const openssh = await time(() => execFileP('ssh', sshArgs), Math.min(PLAN.rtt, 20));
    return { nodelay, reused, reusedNagle, fresh, openssh };
  } finally {
    await s.close();
  }
}

// ---------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const tStart = Date.now();
  const loadStart = loadavg();
  try {
    Runtime.install({ logger: new DefaultLogger('ERROR') });
  } catch {
    // installed
  }
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-bench-'));
  const cleanups: Array<() => Promise<unknown>> = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await c().catch((e: unknown) => say(`cleanup: ${String(e)}`));
    cleanups.length = 0;
    rmSync(dir, { recursive: true, force: true });
  };
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    say('\ninterrupted: stopping everything…');
    void cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    say(`NixFleet benchmark (${quick ? 'quick' : 'full'}): ${cpus().length} cores, Node ${process.version}, Temporal CLI ${TEMPORAL_CLI_VERSION}`);
    // 5a. The workflow bundle, built once (and timed a few times).
    say('▶ bundling the workflows (bundleWorkflowCode)…');
    const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} };
    const bundleMs: number[] = [];
    for (let i = 0; i < PLAN.bundleRepeats; i++) {
      const t0 = performance.now();
      await bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), logger: quiet });
      bundleMs.push(performance.now() - t0);
    }
    const benchBundle = await bundleWorkflowCode({ workflowsPath: require.resolve('./workflows'), logger: quiet });
    const bundleFile = join(dir, 'workflow-bundle.js');
    // Slimmed as the product's worker loads it (workers/bundle.ts).
    const benchCode = slimWorkflowBundle(benchBundle.code);
    writeFileSync(bundleFile, benchCode);
    const bundleKiB = Buffer.byteLength(benchCode) / 1024;

    say('▶ starting the Temporal dev server…');
    const server = await startDevServer({ dbFile: join(dir, 'temporal.db'), uiPort: false, logFile: join(dir, 'temporal.log') });
    cleanups.push(() => server.stop());
    const connection = await Connection.connect({ address: server.address });
    cleanups.push(() => connection.close());
    const client = new Client({ connection, namespace: server.namespace });

    say(`▶ starting the GitHub stand-in and ${MAX_HOSTS} stand-in hosts…`);
    const names = Array.from({ length: MAX_HOSTS }, (_, i) => `b${String(i + 1).padStart(3, '0')}`);
    const tf = performance.now();
    // 100 sshd at once on a loaded machine can take longer than the default 10 s each.
    const world = await startWorld({ hosts: names.map((name) => ({ name, kind: 'nixos' as const })), fleetStartTimeoutMs: 120_000 });
    cleanups.push(() => world.stop());
    const fleetStartMs = performance.now() - tf;
    const keyFile = join(dir, 'client_ed25519');
    const knownHostsFile = join(dir, 'known_hosts');
    writeFileSync(keyFile, world.fleet.clientPrivateKey, { mode: 0o600 });
    writeFileSync(knownHostsFile, world.fleet.knownHosts);
    say(`  ${names.length} hosts in ${num(secs(fleetStartMs))} s (127.0.0.x loopback addresses)`);

    const ctx: Ctx = { dir, server, client, connection, world, names, keyFile, knownHostsFile, bundleFile, apiToken: randomBytes(18).toString('base64url'), taskQueue: `bench-${process.pid}`, versionSeq: 1 };
    cleanups.push(async () => Promise.all([ctx.worker?.stop(), ctx.api?.stop()]));
    await freshProcesses(ctx);

    // 5b. SSH costs.
    say('▶ SSH round trips and TCP_NODELAY…');
    const ssh = await sshCosts(ctx);

    // 1 + 3. Overhead per host, and rollback of the deployed hosts in parallel / one after another.
    const overhead: Record<number, { product: ProductRun[]; plain: BaselineRun[]; mux: BaselineRun[]; muxP: BaselineRun[]; rbPar: number[]; rbSeq: number[]; rbLogins: number[] }> = {};
    for (const { n, repeats } of PLAN.overhead) {
      const o: (typeof overhead)[number] = (overhead[n] = { product: [], plain: [], mux: [], muxP: [], rbPar: [], rbSeq: [], rbLogins: [] });
      const subset = names.slice(0, n);
      for (let r = 0; r < repeats; r++) {
        const p = await productDeploy(ctx, subset);
        o.product.push(p);
        const first = r % 2 === 0;
        const rb1 = await rollbackMany(ctx, p, first);
        (first ? o.rbPar : o.rbSeq).push(rb1.ms);
        o.rbLogins.push(...rb1.logins);
        const plain = await baseline(ctx, subset, 'plain');
        o.plain.push(plain);
        const rb2 = await rollbackMany(ctx, p, !first);
        (!first ? o.rbPar : o.rbSeq).push(rb2.ms);
        const mux = await baseline(ctx, subset, 'mux');
        o.mux.push(mux);
        const muxP = await baseline(ctx, subset, 'mux-persistent');
        o.muxP.push(muxP);
        say(
          `  N=${n} #${r + 1}: product ${num(secs(p.h.closeMs - p.h.startMs))} s (hosts ${num(secs(p.hostsMs))} s), ssh loop ${num(secs(plain.totalMs))} s, ssh loop (mux) ${num(secs(mux.totalMs))} s, (mux, persistent) ${num(secs(muxP.totalMs))} s; rollback ${first ? 'parallel' : 'sequential'} ${num(secs(rb1.ms))} s / ${first ? 'sequential' : 'parallel'} ${num(secs(rb2.ms))} s`,
        );
      }
    }

    // 2. Halt latency: the last of N hosts fails its activation (exit 4).
    say(`▶ halt latency: ${PLAN.halt.n} hosts, the last one fails…`);
    const halts: Array<{ closeToCompensationScheduled: number; closeToFirstRollbackCmd: number; toRevertStart: number; toFirstRollbackActivity: number; toFirstRollbackCmd: number; toLastRolledBack: number; failedSwitchTail: number; revertMs: number; perHostRollbackMs: number; eventsPerRolledBackHost: number }> = [];
    for (let r = 0; r < PLAN.halt.repeats; r++) {
      const subset = names.slice(0, PLAN.halt.n);
      const failHost = subset[subset.length - 1] as string;
      const p = await productDeploy(ctx, subset, { failHost });
      if (p.status.outcome !== 'failed-rolled-back') throw new Error(`halt run: ${p.status.outcome}`);
      const log = ctx.world.fleet.host(failHost).commandLog().filter((e) => e.atMs >= p.startedAtMs - 1000);
      const exit = log.find((e) => e.tool === 'switch-to-configuration-exit' && e.args[0] === '4');
      if (!exit) throw new Error('no failing switch exit in the command log');
      const after = (e: { atMs: number }) => e.atMs >= exit.atMs;
      const rollbackCmds = subset.flatMap((n) => ctx.world.fleet.host(n).commandLog().filter(after).filter((e) => e.tool === 'nix-env' && e.args.includes('--switch-generation')));
      const rollbackExits = subset.flatMap((n) => ctx.world.fleet.host(n).commandLog().filter(after).filter((e) => e.tool === 'switch-to-configuration-exit' && e.args[0] === '0'));
      const acts = p.h.activities;
      const revert = acts.find((a) => a.name === 'revertMerge') as ActivityTiming;
      const rbs = acts.filter((a) => a.name === 'rollbackHost');
      const failedSwitch = acts.find((a) => a.name === 'switchHost' && a.outcome === 'failed') as ActivityTiming;
      const rbEvents = p.historyLength; // the parent's history (the compensation runs there); per rolled-back host below
      halts.push({
        toRevertStart: revert.started - exit.atMs,
        toFirstRollbackActivity: Math.min(...rbs.map((a) => a.started)) - exit.atMs,
        toFirstRollbackCmd: Math.min(...rollbackCmds.map((e) => e.atMs)) - exit.atMs,
        toLastRolledBack: Math.max(...rollbackExits.map((e) => e.atMs)) - exit.atMs,
        failedSwitchTail: failedSwitch.closed - exit.atMs,
        // issue 14's targets start at the failing activity's close (server clock; the hosts' logs share the machine's clock)
        closeToCompensationScheduled: Math.min(revert.scheduled, ...rbs.map((a) => a.scheduled)) - failedSwitch.closed,
        closeToFirstRollbackCmd: Math.min(...rollbackCmds.map((e) => e.atMs)) - failedSwitch.closed,
        revertMs: revert.closed - revert.started,
        perHostRollbackMs: (Math.max(...rbs.map((a) => a.closed)) - Math.min(...rbs.map((a) => a.scheduled))) / rbs.length,
        eventsPerRolledBackHost: rbEvents,
      });
      const hh = halts[halts.length - 1]!;
      say(`  #${r + 1}: exit→revert started ${num(hh.toRevertStart)} ms, →first rollback cmd ${num(hh.toFirstRollbackCmd)} ms, →last host rolled back ${num(hh.toLastRolledBack)} ms`);
    }
    // Events a halt adds per rolled-back host: compare with a healthy run of the same size.
    const haltEvents = halts[0]?.eventsPerRolledBackHost ?? NaN;

    // 3b. The product's own compensation: N hosts, the last fails, one wave with maxParallel 1 vs N.
    const rbProduct: RbProduct[] = [];
    for (let r = 0; r < PLAN.rbProduct.repeats; r++) {
      for (const maxParallel of [1, PLAN.rbProduct.n]) {
        const subset = names.slice(0, PLAN.rbProduct.n);
        const failHost = subset[subset.length - 1] as string;
        say(`▶ product rollback: ${subset.length} hosts, one wave, maxParallel ${maxParallel}, the last one fails (#${r + 1})…`);
        const p = await productDeploy(ctx, subset, { failHost, maxParallel });
        if (p.status.outcome !== 'failed-rolled-back') throw new Error(`product rollback run: ${p.status.outcome}: ${p.status.failure}`);
        const rbs = p.h.activities.filter((a) => a.name === 'rollbackHost');
        const log = ctx.world.fleet.host(failHost).commandLog().filter((e) => e.atMs >= p.startedAtMs - 1000);
        const exit = log.find((e) => e.tool === 'switch-to-configuration-exit' && e.args[0] === '4');
        const rollbackExits = exit ? subset.flatMap((n) => ctx.world.fleet.host(n).commandLog().filter((e) => e.atMs >= exit.atMs && e.tool === 'switch-to-configuration-exit' && e.args[0] === '0')) : [];
        const x: RbProduct = {
          n: subset.length,
          maxParallel,
          rolledBack: rbs.length,
          rollbacksMs: Math.max(...rbs.map((a) => a.closed)) - Math.min(...rbs.map((a) => a.scheduled)),
          toLastRolledBack: exit && rollbackExits.length ? Math.max(...rollbackExits.map((e) => e.atMs)) - exit.atMs : NaN,
          parentEvents: p.historyLength,
          childEvents: p.childEvents,
        };
        rbProduct.push(x);
        say(`  ${x.rolledBack} rollbackHost activities in ${num(secs(x.rollbacksMs))} s; exit→last rolled back ${num(secs(x.toLastRolledBack))} s; parent ${x.parentEvents} events, wave child ${x.childEvents}`);
      }
    }

    // Improvement experiments: the per-host sequence in variants (bench workflow, same activities).
    say(`▶ per-host orchestration variants (${PLAN.variantsN} hosts)…`);
    const variants: Record<DeployVariant, { perHostMs: number[]; gapMs: number[]; s2sMs: number[] }> = {
      'three-activities': { perHostMs: [], gapMs: [], s2sMs: [] },
      'local-reads': { perHostMs: [], gapMs: [], s2sMs: [] },
      'no-separate-verify': { perHostMs: [], gapMs: [], s2sMs: [] },
    };
    const productPoll: ProductRun[] = [];
    const productNoPoll: ProductRun[] = [];
    for (let r = 0; r < PLAN.variantRepeats; r++) {
      for (const v of Object.keys(variants) as DeployVariant[]) {
        const x = await benchDeploy(ctx, names.slice(0, PLAN.variantsN), v);
        variants[v].perHostMs.push(x.perHostMs);
        variants[v].gapMs.push(x.perHostGapMs);
        variants[v].s2sMs.push(x.perHostS2SMs);
        say(`  ${v} #${r + 1}: ${num(x.perHostMs)} ms per host`);
      }
      for (const poll of [true, false]) {
        const p = await productDeploy(ctx, names.slice(0, PLAN.variantsN), { poll });
        (poll ? productPoll : productNoPoll).push(p);
        say(`  product ${poll ? 'with' : 'without'} status polling #${r + 1}: ${num(p.hostsMs / p.n)} ms per host`);
      }
    }

    // 4. Growth: fresh worker and API per size, one healthy single-execution deployment each.
    const growth: Array<{ n: number; runs: ProductRun[]; workerPeak: number[]; apiPeak: number[] }> = [];
    for (const n of PLAN.growth) {
      const g = { n, runs: [] as ProductRun[], workerPeak: [] as number[], apiPeak: [] as number[] };
      for (let r = 0; r < PLAN.growthRepeats; r++) {
        say(`▶ growth: ${n} hosts (#${r + 1}), fresh worker and API…`);
        await freshProcesses(ctx);
        const p = await productDeploy(ctx, names.slice(0, n), 'growthMaxParallel' in PLAN && PLAN.growthMaxParallel ? { maxParallel: PLAN.growthMaxParallel } : {});
        g.runs.push(p);
        g.workerPeak.push(ctx.worker?.peakRssMiB() ?? NaN);
        g.apiPeak.push(ctx.api?.peakRssMiB() ?? NaN);
        say(`  ${num(secs(p.h.closeMs - p.h.startMs))} s, parent ${p.historyLength} events / ${num(p.historyBytes / 1024)} KiB, largest child ${p.childEvents} events / ${num(p.childBytes / 1024)} KiB, worker peak ${num(g.workerPeak.at(-1) as number)} MiB, API peak ${num(g.apiPeak.at(-1) as number)} MiB`);
      }
      growth.push(g);
    }

    // 4b. Memory across back-to-back deployments on one fresh worker (RSS after each, and the peak).
    say(`▶ ${PLAN.backToBack.runs} back-to-back deployments of ${PLAN.backToBack.n} hosts on one fresh worker…`);
    await freshProcesses(ctx);
    const backToBack: BackToBack = { n: PLAN.backToBack.n, idleMiB: rssOf(ctx.worker?.proc.pid as number).rssMiB, rssAfterMiB: [], peakAfterMiB: [], perHostMs: [] };
    for (let i = 0; i < PLAN.backToBack.runs; i++) {
      const p = await productDeploy(ctx, names.slice(0, PLAN.backToBack.n));
      const pid = ctx.worker?.proc.pid as number;
      backToBack.rssAfterMiB.push(rssOf(pid).rssMiB);
      backToBack.peakAfterMiB.push(rssOf(pid).peakMiB);
      backToBack.perHostMs.push(p.hostsMs / p.n);
    }
    say(`  worker RSS after each: ${backToBack.rssAfterMiB.map((x) => num(x, 0)).join(' ')} MiB; peak ${num(Math.max(...backToBack.peakAfterMiB), 0)} MiB`);

    // 5c. Worker start as workers/main.ts does it (bundling at start).
    await Promise.all([ctx.worker?.stop(), ctx.api?.stop()]);
    ctx.worker = undefined;
    ctx.api = undefined;
    for (let i = 0; i < PLAN.pathWorkerStarts; i++) {
      const w = await startWorker(ctx, 'path');
      await w.stop();
    }

    const results: Results = { backToBack, loadAvg: { start: loadStart, end: loadavg() }, plan: PLAN, quick, measured: measuredCommit(), date: new Date().toISOString(), bundleMs, bundleKiB, fleetStartMs, ssh, overhead, halts, haltEvents, rbProduct, variants, productPoll, productNoPoll, growth, workerStarts, totalMs: Date.now() - tStart };
    mkdirSync(RESULTS_DIR, { recursive: true });
    const rawFile = join(RESULTS_DIR, `run-${results.date.replace(/[:.]/g, '-')}.json`);
    writeFileSync(rawFile, JSON.stringify(results));
    say(`raw results: ${rawFile}`);
    output(results);
  } finally {
    await cleanup();
  }
}

// ---------------------------------------------------------------------------------------------------
// The report.

const RESULTS_DIR = resolve(__dirname, '..', '.nixfleet', 'bench');


function measuredCommit(): string {
  if (process.env.BENCH_COMMIT) return process.env.BENCH_COMMIT;
  try {
    const root = resolve(__dirname, '..');
    const sha = execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['-C', root, 'status', '--porcelain', '--', '.', ':!bench', ':!BENCHMARKS.md'], { encoding: 'utf8' }).trim();
    return dirty ? `${sha} + uncommitted changes` : sha;
  } catch {
    return 'unknown';
  }
}

function output(r: Results): void {
  const report = render(r);
  say('');
  say(report.table);
  if (!argv['no-write']) {
    // The experiments' section (bench/experiments.ts writes it) is kept as it is.
    const kept = experimentsSection(argv.out as string);
    writeFileSync(argv.out as string, kept ? `${report.markdown}\n${kept}` : report.markdown);
    say(`\nwrote ${argv.out}`);
  }
}

interface Results {
  plan: typeof PLAN;
  quick: boolean;
  measured: string;
  date: string;
  workerStarts: typeof workerStarts;
  bundleMs: number[];
  bundleKiB: number;
  fleetStartMs: number;
  ssh: Record<string, Stat | string>;
  overhead: Record<number, { product: ProductRun[]; plain: BaselineRun[]; mux: BaselineRun[]; muxP?: BaselineRun[]; rbPar: number[]; rbSeq: number[]; rbLogins: number[] }>;
  backToBack?: BackToBack;
  loadAvg?: { start: number[]; end: number[] };
  halts: Array<Record<string, number>>;
  haltEvents: number;
  /** absent in raw results written before the product rollback was measured */
  rbProduct?: RbProduct[];
  variants: Record<DeployVariant, { perHostMs: number[]; gapMs: number[]; s2sMs: number[] }>;
  productPoll: ProductRun[];
  productNoPoll: ProductRun[];
  growth: Array<{ n: number; runs: ProductRun[]; workerPeak: number[]; apiPeak: number[] }>;
  totalMs: number;
}

interface BackToBack {
  n: number;
  /** the fresh worker's RSS before its first deployment (polling, bundle loaded), MiB */
  idleMiB?: number;
  /** the worker's RSS (VmRSS) after each deployment, MiB */
  rssAfterMiB: number[];
  /** its peak (VmHWM) after each deployment, MiB */
  peakAfterMiB: number[];
  perHostMs: number[];
}

interface RbProduct {
  n: number;
  maxParallel: number;
  rolledBack: number;
  /** first rollbackHost scheduled → last closed (parent history, server clock) */
  rollbacksMs: number;
  /** the failing activation's exit → the last host's rollback activation exited (hosts' command logs) */
  toLastRolledBack: number;
  parentEvents: number;
  childEvents: number;
}

function render(r: Results): { table: string; markdown: string } {
  const rows: Array<[string, string, string]> = [];
  const row = (section: string, what: string, value: string) => rows.push([section, what, value]);
  const notes: string[] = [];

  // 1. Overhead per host.
  for (const [nStr, o] of Object.entries(r.overhead)) {
    const n = Number(nStr);
    const e2e = stat(o.product.map((p) => p.h.closeMs - p.h.startMs));
    const hosts = stat(o.product.map((p) => p.hostsMs));
    const plain = stat(o.plain.map((b) => b.totalMs));
    const mux = stat(o.mux.map((b) => b.totalMs));
    const own = stat(o.plain.concat(o.mux).map((b) => b.remoteMs / n));
    const ratio = stat(o.product.map((p, i) => (p.h.closeMs - p.h.startMs) / (o.plain[i] as BaselineRun).totalMs));
    const ratioMux = stat(o.product.map((p, i) => (p.h.closeMs - p.h.startMs) / (o.mux[i] as BaselineRun).totalMs));
    const perHost = stat(o.product.map((p) => p.hostsMs / n));
    const overheadPerHost = stat(o.product.map((p, i) => p.hostsMs / n - (o.plain[i] as BaselineRun).remoteMs / n));
    const plainPerHostSsh = stat(o.plain.map((b) => (b.totalMs - b.remoteMs) / n));
    const muxPerHostSsh = stat(o.mux.map((b) => (b.totalMs - b.remoteMs) / n));
    const bd = o.product.map(breakdown);
    const s = `1. overhead N=${n}`;
    row(s, 'product total (workflow start→close, incl. merge + audit)', fmt(stat(e2e.n ? o.product.map((p) => secs(p.h.closeMs - p.h.startMs)) : []), ' s'));
    row(s, 'product, host steps only (first record → last verify)', fmt(stat(o.product.map((p) => secs(p.hostsMs))), ' s'));
    row(s, 'ssh loop total (OpenSSH, new connection per command)', fmt(stat(o.plain.map((b) => secs(b.totalMs))), ' s'));
    row(s, 'ssh loop total (OpenSSH ControlMaster, 1 connection/host)', fmt(stat(o.mux.map((b) => secs(b.totalMs))), ' s'));
    row(s, 'ratio product / ssh loop', fmt(ratio, '×'));
    row(s, 'ratio product / ssh loop (mux)', fmt(ratioMux, '×'));
    if (o.muxP?.length) {
      row(s, 'ssh loop total (OpenSSH ControlMaster, masters opened before the run)', fmt(stat(o.muxP.map((b) => secs(b.totalMs))), ' s'));
      row(s, 'ratio product / ssh loop (mux, persistent masters)', fmt(stat(o.product.map((p, i) => (p.h.closeMs - p.h.startMs) / (o.muxP?.[i] as BaselineRun).totalMs)), '×'));
      row(s, 'ssh loop (mux, persistent) per host − commands', fmt(stat(o.muxP.map((b) => (b.totalMs - b.remoteMs) / n)), ' ms'));
    }
    row(s, "ratio product per host / host commands' own time", fmt(stat(o.product.map((p, i) => p.hostsMs / n / ownInRound(o, i, n))), '×'));
    row(s, "host commands' own time per host (5 commands, on the host)", fmt(own, ' ms'));
    row(s, 'product time per host', fmt(perHost, ' ms'));
    row(s, "product per host − commands' own time", fmt(overheadPerHost, ' ms'));
    row(s, 'ssh loop per host − commands (5 OpenSSH connections)', fmt(plainPerHostSsh, ' ms'));
    row(s, 'ssh loop (mux) per host − commands', fmt(muxPerHostSsh, ' ms'));
    row(s, 'per host: activity schedule→start (3 activities)', fmt(stat(bd.map((b) => b.schedToStartMs)), ' ms'));
    row(s, 'per host: between steps (activity closed → next scheduled)', fmt(stat(bd.map((b) => b.gapMs)), ' ms'));
    row(s, '  of which workflow task queued (scheduled → picked up)', fmt(stat(bd.map((b) => b.wftQueueMs)), ' ms'));
    row(s, '  of which workflow task in the worker (started → completed)', fmt(stat(bd.map((b) => b.wftWorkerMs)), ' ms'));
    row(s, '  workflow tasks per host', fmt(stat(bd.map((b) => b.wftPerHost)), '', 1));
    row(s, 'per host: inside the activities (7 SSH execs + code)', fmt(stat(bd.map((b) => b.runMs)), ' ms'));
    void hosts;
    void plain;
    void mux;
  }
  // 2. Halt latency.
  {
    const s = `2. halt (${r.plan.halt.n} hosts, last fails)`;
    const h = (k: string) => stat(r.halts.map((x) => x[k] as number));
    row(s, 'failing switch exit → its activity closed (re-read + report)', fmt(h('failedSwitchTail'), ' ms'));
    row(s, 'failing activity closed → first compensation scheduled', fmt(h('closeToCompensationScheduled'), ' ms'));
    row(s, 'failing activity closed → first rollback command on a host', fmt(h('closeToFirstRollbackCmd'), ' ms'));
    row(s, 'failing switch exit → first compensation (revert) started', fmt(h('toRevertStart'), ' ms'));
    row(s, 'revert on GitHub (stand-in) duration', fmt(h('revertMs'), ' ms'));
    row(s, 'failing switch exit → first host rollback activity started', fmt(h('toFirstRollbackActivity'), ' ms'));
    row(s, 'failing switch exit → first rollback command on a host', fmt(h('toFirstRollbackCmd'), ' ms'));
    row(s, `failing switch exit → last host rolled back (${r.plan.halt.n} hosts)`, fmt(h('toLastRolledBack'), ' ms'));
    row(s, 'per host rolled back (compensation, default rollout: maxParallel 1)', fmt(h('perHostRollbackMs'), ' ms'));
  }
  // 3. Rollback of many hosts.
  for (const [nStr, o] of Object.entries(r.overhead)) {
    const n = Number(nStr);
    const s = `3. rollback N=${n}`;
    const seq = stat(o.rbSeq.map(secs));
    const par = stat(o.rbPar.map(secs));
    row(s, 'one after another (bench workflow, rollbackHost activity)', fmt(seq, ' s'));
    row(s, 'in parallel (bench workflow, Promise.all of rollbackHost)', fmt(par, ' s'));
    row(s, 'speed-up parallel vs sequential', `${num(seq.median / par.median)}×`);
    row(s, 'SSH logins per host for the rollback after the deploy', fmt(stat(o.rbLogins)));
  }
  if (r.rbProduct?.length) {
    const n = r.rbProduct[0]?.n ?? 0;
    const s = `3. rollback N=${n}, product`;
    const of = (mp: number) => r.rbProduct?.filter((x) => x.maxParallel === mp) ?? [];
    const seq = of(1);
    const par = of(n);
    row(s, 'rollbackHost activities, one wave maxParallel 1 (first scheduled → last closed)', `${fmt(stat(seq.map((x) => secs(x.rollbacksMs))), ' s')}, ${num(stat(seq.map((x) => x.rolledBack)).median, 0)} hosts`);
    row(s, `rollbackHost activities, one wave maxParallel ${n}`, `${fmt(stat(par.map((x) => secs(x.rollbacksMs))), ' s')}, ${num(stat(par.map((x) => x.rolledBack)).median, 0)} hosts`);
    row(s, 'speed-up maxParallel N vs 1 (rollbacks)', `${num(stat(seq.map((x) => x.rollbacksMs)).median / stat(par.map((x) => x.rollbacksMs)).median)}×`);
    row(s, 'failing switch exit → last host rolled back, maxParallel 1 / N', `${fmt(stat(seq.map((x) => secs(x.toLastRolledBack))), ' s')} / ${fmt(stat(par.map((x) => secs(x.toLastRolledBack))), ' s')}`);
    row(s, 'history events, parent / wave child, maxParallel 1', `${fmt(stat(seq.map((x) => x.parentEvents)), '', 0)} / ${fmt(stat(seq.map((x) => x.childEvents)), '', 0)}`);
    row(s, 'history events, parent / wave child, maxParallel N', `${fmt(stat(par.map((x) => x.parentEvents)), '', 0)} / ${fmt(stat(par.map((x) => x.childEvents)), '', 0)}`);
  }
  // 4. Growth.
  const gx = r.growth.map((g) => g.n);
  // Per execution: the parent (signals + compensation) and the largest child (the one wave of all hosts).
  const gEvents = r.growth.map((g) => stat(g.runs.map((p) => p.historyLength)).median);
  const gBytes = r.growth.map((g) => stat(g.runs.map((p) => p.historyBytes)).median);
  const fe = linearFit(gx, gEvents);
  const fb = linearFit(gx, gBytes);
  const fce = linearFit(gx, r.growth.map((g) => stat(g.runs.map((p) => p.childEvents)).median));
  const fcb = linearFit(gx, r.growth.map((g) => stat(g.runs.map((p) => p.childBytes)).median));
  const maxChildByEvents = Math.floor((10_240 - fce.intercept) / fce.slope);
  const maxChildByBytes = Math.floor((10 * 1024 * 1024 - fcb.intercept) / fcb.slope);
  const haltN = r.plan.halt.n;
  // A halt at the last host adds the revert and one rollback per host.
  const healthyAtHalt = fe.intercept + fe.slope * haltN;
  const rbEventsPerHost = (r.haltEvents - healthyAtHalt) / haltN;
  const maxHealthyByEvents = Math.floor((10_240 - fe.intercept) / fe.slope);
  const maxHealthyByBytes = Math.floor((10 * 1024 * 1024 - fb.intercept) / fb.slope);
  const maxWorstByEvents = Math.floor((10_240 - fe.intercept) / (fe.slope + rbEventsPerHost));
  for (const g of r.growth) {
    const s = `4. growth N=${g.n}`;
    const t = stat(g.runs.map((p) => secs(p.h.closeMs - p.h.startMs)));
    const mp = 'growthMaxParallel' in r.plan && r.plan.growthMaxParallel ? r.plan.growthMaxParallel : 1;
    row(s, `total time (one wave, maxParallel ${mp}${mp === 1 ? ': the default rollout' : ''})`, fmt(t, ' s'));
    row(s, 'time per host', fmt(stat(g.runs.map((p) => p.hostsMs / g.n)), ' ms'));
    row(s, 'child executions read (wave/build; fleet lock not counted)', fmt(stat(g.runs.map((p) => p.children)), '', 0));
    row(s, 'parent history events / per host', `${fmt(stat(g.runs.map((p) => p.historyLength)), '', 0)} / ${num(stat(g.runs.map((p) => p.historyLength)).median / g.n, 1)}`);
    row(s, 'largest child history events / per host', `${fmt(stat(g.runs.map((p) => p.childEvents)), '', 0)} / ${num(stat(g.runs.map((p) => p.childEvents)).median / g.n, 1)}`);
    row(s, 'parent history bytes / per host', `${fmt(stat(g.runs.map((p) => p.historyBytes / 1024)), ' KiB', 0)} / ${num(stat(g.runs.map((p) => p.historyBytes)).median / g.n, 0)} B`);
    row(s, 'largest child history bytes / per host', `${fmt(stat(g.runs.map((p) => p.childBytes / 1024)), ' KiB', 0)} / ${num(stat(g.runs.map((p) => p.childBytes)).median / g.n, 0)} B`);
    row(s, 'worker peak RSS (child process)', fmt(stat(g.workerPeak), ' MiB', 0));
    row(s, 'API peak RSS (child process, polled every 500 ms)', fmt(stat(g.apiPeak), ' MiB', 0));
    row(s, 'SSH logins per host (whole deployment)', fmt(stat(g.runs.flatMap((p) => p.loginsPerHost)), '', 0));
  }
  row('4. growth fit', 'parent events = a + b·hosts', `a=${num(fe.intercept, 0)}, b=${num(fe.slope, 2)} per host`);
  row('4. growth fit', 'wave child events = a + b·hosts in the wave', `a=${num(fce.intercept, 0)}, b=${num(fce.slope, 2)} per host`);
  row('4. growth fit', 'parent bytes = a + b·hosts', `a=${num(fb.intercept / 1024, 1)} KiB, b=${num(fb.slope, 0)} B per host`);
  row('4. growth fit', 'wave child bytes = a + b·hosts in the wave', `a=${num(fcb.intercept / 1024, 1)} KiB, b=${num(fcb.slope, 0)} B per host`);
  row('4. growth fit', 'extra parent events per host rolled back (from the halt runs)', num(rbEventsPerHost, 1));
  row('4. growth fit', 'largest wave under 10,240 events per child', `${maxChildByEvents} hosts`);
  row('4. growth fit', 'largest fleet under 10,240 parent events (healthy)', `${maxHealthyByEvents} hosts`);
  row('4. growth fit', 'largest fleet under 10,240 parent events (fails at the last host)', `${maxWorstByEvents} hosts`);
  row('4. growth fit', 'largest fleet, default rollout (one wave of all hosts), healthy', `${Math.min(maxChildByEvents, maxHealthyByEvents)} hosts`);
  row('4. growth fit', 'largest wave / fleet under 10 MB per child / parent (healthy)', `${maxChildByBytes} / ${maxHealthyByBytes} hosts`);
  if (r.backToBack) {
    const b = r.backToBack;
    const s = `4b. memory, ${b.rssAfterMiB.length} back-to-back`;
    row(s, `worker RSS after deployment 1 / ${b.rssAfterMiB.length} (${b.n} hosts each, one fresh worker)`, `${num(b.rssAfterMiB[0] as number, 0)} / ${num(b.rssAfterMiB.at(-1) as number, 0)} MiB`);
    row(s, 'fresh worker RSS before its first deployment (node + tsx + Temporal core + workflow bundle)', `${num(b.idleMiB ?? NaN, 0)} MiB`);
    row(s, 'worker RSS after each deployment', `${b.rssAfterMiB.map((x) => num(x, 0)).join(' ')} MiB`);
    row(s, 'worker RSS trend over the second half (least squares)', `${num(rssSlope(b), 2)} MiB per deployment`);
    row(s, 'worker peak RSS over all of them', `${num(Math.max(...b.peakAfterMiB), 0)} MiB`);
    row(s, 'time per host (median over the deployments)', fmt(stat(b.perHostMs), ' ms'));
  }
  // 5. Costs on the path.
  {
    const s = '5. costs';
    const allProduct = Object.values(r.overhead).flatMap((o) => o.product);
    row(s, 'SSH logins per host per deployment, fresh worker (7 execs per host)', fmt(stat(r.growth.flatMap((g) => g.runs.flatMap((p) => p.loginsPerHost))), '', 0));
    row(s, 'SSH logins per host, back-to-back deployments on one worker', fmt(stat(allProduct.flatMap((p) => p.loginsPerHost)), '', 0));
    row(s, 'SSH logins per host, ssh loop plain / mux', `${fmt(stat(Object.values(r.overhead).flatMap((o) => o.plain.flatMap((b) => b.loginsPerHost))), '', 0)} / ${fmt(stat(Object.values(r.overhead).flatMap((o) => o.mux.flatMap((b) => b.loginsPerHost))), '', 0)}`);
    row(s, 'TCP_NODELAY on the HostSession socket', String(r.ssh.nodelay));
    row(s, 'exec on a reused ssh2 connection (nodelay)', fmt(r.ssh.reused as Stat, ' ms'));
    row(s, 'exec on a reused ssh2 connection with Nagle (nodelay off)', fmt(r.ssh.reusedNagle as Stat, ' ms'));
    row(s, 'fresh ssh2 connect + exec + close', fmt(r.ssh.fresh as Stat, ' ms'));
    row(s, 'OpenSSH `ssh host true` (new connection)', fmt(r.ssh.openssh as Stat, ' ms'));
    row(s, 'bundleWorkflowCode (workflows/, once per worker process)', fmt(stat(r.bundleMs.map(secs)), ' s'));
    row(s, 'workflow bundle size (product + bench workflows, without the sources in its source map: workers/bundle.ts)', `${num(r.bundleKiB, 0)} KiB`);
    row(s, 'worker start, prebuilt bundle (fork → polling)', fmt(stat(r.workerStarts.filter((w) => w.mode === 'bundle').map((w) => secs(w.forkToReadyMs))), ' s'));
    row(s, '  of which Worker.create', fmt(stat(r.workerStarts.filter((w) => w.mode === 'bundle').map((w) => w.createMs)), ' ms'));
    row(s, 'worker start as workers/main.ts (bundles at start)', fmt(stat(r.workerStarts.filter((w) => w.mode === 'path').map((w) => secs(w.forkToReadyMs))), ' s'));
    row(s, `stand-in fleet start (${Math.max(...r.plan.growth, ...r.plan.overhead.map((o) => o.n))} hosts)`, `${num(secs(r.fleetStartMs))} s (n=1)`);
  }
  // Variants.
  {
    const s = `6. per-host variants (N=${r.plan.variantsN})`;
    const base = stat(r.variants['three-activities'].perHostMs).median;
    for (const [v, x] of Object.entries(r.variants)) {
      const st = stat(x.perHostMs);
      row(s, `bench workflow, ${v}: time per host`, `${fmt(st, ' ms')}${v === 'three-activities' ? '' : `, Δ ${st.median - base >= 0 ? '+' : ''}${num(st.median - base)} ms`}`);
    }
    for (const [label, runs] of [['product, API status polled every 500 ms', r.productPoll], ['product, no status polling', r.productNoPoll]] as const) {
      const bd = runs.map(breakdown);
      row(s, `${label}: time per host`, fmt(stat(runs.map((p) => p.hostsMs / p.n)), ' ms'));
      row(s, `${label}: workflow tasks per host / worker ms per host`, `${fmt(stat(bd.map((b) => b.wftPerHost)), '', 1)} / ${fmt(stat(bd.map((b) => b.wftWorkerMs)), ' ms')}`);
    }
  }

  const targets = targetRows(r);
  const w0 = Math.max(...rows.map((x) => x[0].length));
  const w1 = Math.max(...rows.map((x) => x[1].length));
  const table = rows.map(([a, b, c]) => `${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}`).join('\n');
  const md = [
    '# Benchmarks',
    '',
    `Generated by \`npx tsx bench/run.ts${r.quick ? ' --quick' : ''}\` at commit ${r.measured}, ${r.date.slice(0, 16).replace('T', ' ')} UTC, in ${num(secs(r.totalMs) / 60, 1)} min: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${num(totalmem() / 2 ** 30, 0)} GiB, Node ${process.version}, Temporal CLI ${TEMPORAL_CLI_VERSION} dev server (SQLite), stand-in fleet of real sshd + Nix hosts on 127.0.0.x. Shared, noisy machine: every figure is the median of repeated runs, with (min–max, n = runs).`,
    '',
    r.loadAvg ? `Load average (1, 5, 15 min) at the start ${r.loadAvg.start.map((x) => num(x)).join(', ')}, at the end ${r.loadAvg.end.map((x) => num(x)).join(', ')} (other agents' tests share the 2 cores): absolute figures move with the load; the ratios compare runs taken in turn in the same minutes.` : '',
    '',
    '## Targets (issue 14)',
    '',
    '| target | measured, this run | met? |',
    '| --- | --- | --- |',
    ...targets.map(([a, b, c]) => `| ${a} | ${b} | ${c} |`),
    '',
    '## All figures',
    '',
    '| section | figure | median (min–max, n) |',
    '| --- | --- | --- |',
    ...rows.map(([a, b, c]) => `| ${a} | ${b.replace(/\|/g, '\\|')} | ${c} |`),
    '',
    ...notes,
    findings(r),
  ].join('\n');
  return { table: `${targets.map(([a, b, c]) => `${a}: ${b} — ${c}`).join('\n')}\n\n${table}`, markdown: md };
}

/** The host commands' own time per host in round i (the baselines of that round, measured on the hosts). */
function ownInRound(o: Results['overhead'][number], i: number, n: number): number {
  return stat([o.plain[i], o.mux[i], o.muxP?.[i]].filter((b): b is BaselineRun => !!b).map((b) => b.remoteMs / n)).median;
}

/** Least-squares slope of the worker's RSS over the second half of the back-to-back deployments (MiB per deployment). */
function rssSlope(b: BackToBack): number {
  const from = Math.floor(b.rssAfterMiB.length / 2);
  const ys = b.rssAfterMiB.slice(from);
  return linearFit(ys.map((_, i) => i + from), ys).slope;
}

/** Issue 14's targets against this run's figures: [target, measured, verdict]. */
function targetRows(r: Results): Array<[string, string, string]> {
  const out: Array<[string, string, string]> = [];
  const verdict = (ok: boolean) => (ok ? 'met' : '**not met**');
  const n = Math.min(...Object.keys(r.overhead).map(Number));
  const o = r.overhead[n] as Results['overhead'][number];
  const perHostRatio = stat(o.product.map((p, i) => p.hostsMs / n / ownInRound(o, i, n)));
  out.push([
    "product time per host ≤ 1.5× the host commands' own time",
    `${fmt(perHostRatio, '×')}: ${num(stat(o.product.map((p) => p.hostsMs / n)).median)} ms against ${num(stat(o.product.map((_, i) => ownInRound(o, i, n))).median)} ms (N=${n})`,
    verdict(perHostRatio.median <= 1.5),
  ]);
  if (o.muxP?.length) {
    const rp = stat(o.product.map((p, i) => (p.h.closeMs - p.h.startMs) / (o.muxP?.[i] as BaselineRun).totalMs));
    out.push([`${n}-host healthy deployment ≤ 1.2× the ControlMaster loop with persistent masters`, `${fmt(rp, '×')} (${num(secs(stat(o.product.map((p) => p.h.closeMs - p.h.startMs)).median))} s against ${num(secs(stat(o.muxP.map((b) => b.totalMs)).median))} s)`, verdict(rp.median <= 1.2)]);
  }
  const rf = stat(o.product.map((p, i) => (p.h.closeMs - p.h.startMs) / (o.mux[i] as BaselineRun).totalMs));
  out.push([`${n}-host healthy deployment ≤ 0.5× the ControlMaster loop that opens its masters in the run`, `${fmt(rf, '×')} (against ${num(secs(stat(o.mux.map((b) => b.totalMs)).median))} s)`, verdict(rf.median <= 0.5)]);
  const rn = stat(o.product.map((p, i) => (p.h.closeMs - p.h.startMs) / (o.plain[i] as BaselineRun).totalMs));
  out.push([`(no target) ${n}-host deployment against the loop with a new connection per command`, `${fmt(rn, '×')} (against ${num(secs(stat(o.plain.map((b) => b.totalMs)).median))} s)`, '—']);
  const h = (k: string) => stat(r.halts.map((x) => x[k] as number));
  if (r.halts[0]?.closeToCompensationScheduled !== undefined) {
    out.push(['failing activity closed → first compensation scheduled ≤ 50 ms (median)', fmt(h('closeToCompensationScheduled'), ' ms'), verdict(h('closeToCompensationScheduled').median <= 50)]);
    out.push(['failing activity closed → first rollback command on a host ≤ 100 ms (median)', fmt(h('closeToFirstRollbackCmd'), ' ms'), verdict(h('closeToFirstRollbackCmd').median <= 100)]);
  }
  const g100 = r.growth.find((g) => g.n === 100) ?? r.growth[r.growth.length - 1];
  if (g100) {
    const peak = stat(g100.workerPeak);
    out.push([`worker peak RSS ≤ 200 MiB through a ${g100.n}-host deployment`, fmt(peak, ' MiB', 0), verdict(peak.median <= 200)]);
  }
  if (r.backToBack) {
    const b = r.backToBack;
    const slope = rssSlope(b);
    const peak = Math.max(...b.peakAfterMiB);
    out.push([
      `worker RSS flat across ${b.rssAfterMiB.length} back-to-back deployments (trend over the second half ≤ 0.5 MiB per deployment, peak ≤ 200 MiB)`,
      `${num(b.rssAfterMiB[0] as number, 0)} MiB after the first, ${num(b.rssAfterMiB.at(-1) as number, 0)} MiB after the last, trend ${num(slope, 2)} MiB per deployment, peak ${num(peak, 0)} MiB`,
      verdict(slope <= 0.5 && peak <= 200),
    ]);
  }
  return out;
}

/** For each target: where its floor is, from this run's figures (the experiments' table below shows the settings tried). */
function floors(r: Results): string {
  const md = (x: number[]) => stat(x).median;
  const n = Math.min(...Object.keys(r.overhead).map(Number));
  const o = r.overhead[n] as Results['overhead'][number];
  const bd = o.product.map(breakdown);
  const perHost = md(o.product.map((p) => p.hostsMs / n));
  const own = md(o.product.map((_, i) => ownInRound(o, i, n)));
  const inside = md(bd.map((b) => b.runMs));
  const wfts = md(bd.map((b) => b.wftPerHost));
  const wq = md(bd.map((b) => b.wftQueueMs));
  const ww = md(bd.map((b) => b.wftWorkerMs));
  const s2s = md(bd.map((b) => b.schedToStartMs));
  const fixed = md(o.product.map((p) => p.h.closeMs - p.h.startMs - p.hostsMs));
  const three = md(r.variants['three-activities'].perHostMs);
  const local = md(r.variants['local-reads'].perHostMs);
  const noPoll = md(r.productNoPoll.map((p) => p.hostsMs / p.n));
  const h = (k: string) => md(r.halts.map((x) => x[k] as number));
  const perTask = (wq + ww) / Math.max(1, wfts);
  const b = r.backToBack;
  return [
    '## Where each target\'s floor is (this run)',
    '',
    `- **Per host** (N=${n}): ${num(perHost)} ms, of which ${num(inside)} ms inside the activities (the host commands, ${num(own)} ms on the host, and their SSH round trips) and ${num(perHost - inside)} ms of orchestration:`,
    `  ${num(wfts, 1)} workflow tasks per host (queued ${num(wq)} ms + in the worker ${num(ww)} ms, ~${num(perTask)} ms each; a task's worker time includes the local reads it runs, record and verify) and ${num(s2s)} ms of activity schedule→start.`,
    `  1.5× the commands' own time leaves ${num(0.5 * own)} ms per host for everything else: the orchestration (${num(perHost - inside)} ms) ${perHost - inside <= 0.5 * own ? 'fits in it; what is over is inside the activities' : 'does not fit in it alone'} (${num(inside - own)} ms more than the commands: 7 SSH execs per host where the loop runs 5, the reads and checks around the switch, the activities' own code on a loaded machine). The wave child sends the parent no signal per host (its records come in its result) and reads the host by local activities (${num(wfts, 1)} workflow tasks per host); the bench workflow's shapes for comparison:`,
    `  the bench workflow with the same three activities and no signals takes ${num(three)} ms per host against the product's ${num(noPoll)} ms at N=${r.plan.variantsN} (section 6), and with record and verify as local activities ${num(local)} ms.`,
    `  Below that, what is left per host is the switch's activity and the one workflow task that runs the reads around it; the floor is then the commands, their SSH execs and one workflow task.`,
    `- **${n}-host deployment against the loops**: the same per-host cost, plus ${num(secs(fixed))} s outside the host steps (merge on GitHub, the wave child's start and close, the audit, the fleet lock), which the loops do not do.`,
    `- **Halt**: ${num(h('closeToCompensationScheduled'))} ms from the failing activity's close to the first compensation scheduled: the wave child's workflow task that sees the failure and closes the child, the server's hand-over of the child's close to the parent, then the parent's task that schedules the first host rollback and the revert together (two workflow tasks, which the load stretches; on an idle machine 48 ms in all, tests/replay/histories/b-speed-compensate-together*.json: child task 5 ms queued + 16 ms, 3 ms hand-over, parent task 6 ms queued + 17 ms). Nothing else runs between them; the floor is those two tasks, which the load stretches.`,
    `  The first rollback command comes ${num(h('closeToFirstRollbackCmd'))} ms after the close: since patched('b-speed-compensate-together') the revert (${num(h('revertMs'))} ms on the stand-in) runs beside the host rollbacks instead of before them (src/domain/compensation-plan.ts), so the first command follows the parent's task and one eager activity dispatch.`,
    b
      ? `- **Worker memory**: a fresh worker holds ${num(b.idleMiB ?? NaN, 0)} MiB before its first deployment (Node, tsx's loader, the Temporal core, the workflow bundle in its V8 context): the floor under any deployment. Through the deployments it rises to the peak in the table; across ${b.rssAfterMiB.length} back-to-back deployments its RSS trend is ${num(rssSlope(b), 2)} MiB per deployment.`
      : '',
    '',
  ].join('\n');
}

/** Whether the min–max ranges of two samples overlap. */
function overlap(a: number[], b: number[]): boolean {
  const x = stat(a);
  const y = stat(b);
  return x.min <= y.max && y.min <= x.max;
}

/** The findings, written from the measured figures (what was found, what was tried, what to change). */
function findings(r: Results): string {
  const md = (x: number[]) => stat(x).median;
  const ns = Object.keys(r.overhead).map(Number);
  const big = Math.max(...ns);
  const o = r.overhead[big] as Results['overhead'][number];
  const perHost = md(o.product.map((p) => p.hostsMs / big));
  const own = md(o.plain.concat(o.mux).map((b) => b.remoteMs / big));
  const bd = o.product.map(breakdown);
  const s2s = md(bd.map((b) => b.schedToStartMs));
  const wq = md(bd.map((b) => b.wftQueueMs));
  const ww = md(bd.map((b) => b.wftWorkerMs));
  const inside = md(bd.map((b) => b.runMs));
  const plainPer = md(o.plain.map((b) => b.totalMs / big));
  const muxPer = md(o.mux.map((b) => b.totalMs / big));
  const rtt = (r.ssh.reused as Stat).median;
  const seq = md(o.rbSeq);
  const par = md(o.rbPar);
  const poll = md(r.productPoll.map((p) => p.hostsMs / p.n));
  const noPoll = md(r.productNoPoll.map((p) => p.hostsMs / p.n));
  const pollW = md(r.productPoll.map((p) => breakdown(p).wftPerHost));
  const noPollW = md(r.productNoPoll.map((p) => breakdown(p).wftPerHost));
  const halt = (k: string) => md(r.halts.map((x) => x[k] as number));
  const gx = r.growth.map((g) => g.n);
  const fe = linearFit(gx, r.growth.map((g) => md(g.runs.map((p) => p.historyLength))));
  const fb = linearFit(gx, r.growth.map((g) => md(g.runs.map((p) => p.historyBytes))));
  const rbEvents = (r.haltEvents - (fe.intercept + fe.slope * r.plan.halt.n)) / r.plan.halt.n;
  const maxHealthy = Math.floor((10_240 - fe.intercept) / fe.slope);
  const maxWorst = Math.floor((10_240 - fe.intercept) / (fe.slope + rbEvents));
  const fce = linearFit(gx, r.growth.map((g) => md(g.runs.map((p) => p.childEvents))));
  const fcb = linearFit(gx, r.growth.map((g) => md(g.runs.map((p) => p.childBytes))));
  const maxWave = Math.floor((10_240 - fce.intercept) / fce.slope);
  const rbp = r.rbProduct ?? [];
  const rbpN = rbp[0]?.n ?? 0;
  const rbpSeq = md(rbp.filter((x) => x.maxParallel === 1).map((x) => x.rollbacksMs));
  const rbpPar = md(rbp.filter((x) => x.maxParallel === rbpN).map((x) => x.rollbacksMs));
  const rbpSeqLast = md(rbp.filter((x) => x.maxParallel === 1).map((x) => x.toLastRolledBack));
  const rbpParLast = md(rbp.filter((x) => x.maxParallel === rbpN).map((x) => x.toLastRolledBack));
  const wPeak = r.growth.map((g) => `${num(md(g.workerPeak), 0)} MiB at ${g.n}`).join(', ');
  const aPeak = r.growth.map((g) => `${num(md(g.apiPeak), 0)} MiB at ${g.n}`).join(', ');
  const bundleS = secs(md(r.bundleMs));
  const startB = secs(md(r.workerStarts.filter((w) => w.mode === 'bundle').map((w) => w.forkToReadyMs)));
  const startP = secs(md(r.workerStarts.filter((w) => w.mode === 'path').map((w) => w.forkToReadyMs)));
  return [
    floors(r),
    '## What the figures say',
    '',
    `**Per host** (N=${big}): the product spends ${num(perHost)} ms per host, of which the host commands themselves take ${num(own)} ms`,
    `(measured on the host by the baseline, same five commands). The rest, ~${num(perHost - own)} ms, splits into: activity`,
    `schedule→start ${num(s2s)} ms (3 activities), workflow tasks queued ${num(wq)} ms and running in the worker ${num(ww)} ms`,
    `(~${num(md(bd.map((b) => b.wftPerHost)), 1)} workflow tasks per host in the wave child: one after each of the 3 activities and one after each of the`,
    `2 signals it sends to the parent; the parent handles those signals in workflow tasks of its own, alongside). Activities and workflow tasks are read from the parent and its wave child's histories. Inside the activities ${num(inside)} ms per host, the same as the`,
    `commands' own time within the noise (7 SSH execs over one reused connection at ${num(rtt, 1)} ms each when idle). The SSH`,
    `round trip itself is a few ms: the orchestration cost is the Temporal task round trips (~${num(s2s + wq + ww)} ms per host), not SSH.`,
    `Against a naive OpenSSH loop (a new connection per command, ${num(plainPer)} ms per host) the product is faster`,
    `(ratio ${fmt(stat(o.product.map((p, i) => (p.h.closeMs - p.h.startMs) / (o.plain[i] as BaselineRun).totalMs)), '×')}), because it keeps one connection per host; against OpenSSH`,
    `with ControlMaster (${num(muxPer)} ms per host) the ratio is ${fmt(stat(o.product.map((p, i) => (p.h.closeMs - p.h.startMs) / (o.mux[i] as BaselineRun).totalMs)), '×')}: the task round trips cost about what`,
    `the OpenSSH client spends per host on process starts and channels. The machine is shared and noisy: runs of the same size vary by up to 2×.`,
    '',
    `**Halt**: ${num(halt('toRevertStart'))} ms from the failing activation's exit to the revert (started with the first host rollback)`,
    `starting; the failed switch activity itself needs ${num(halt('failedSwitchTail'))} ms of that (it re-reads the host to tell`,
    `whether the profile moved). The revert on the GitHub stand-in takes ${num(halt('revertMs'))} ms and runs *beside* the host`,
    `rollbacks (started in the same workflow task, the first rollback first), so the first host rollback command comes ${num(halt('toFirstRollbackCmd'))} ms after the failure and the last`,
    `of ${r.plan.halt.n} hosts is back ${num(halt('toLastRolledBack'))} ms after it (${num(halt('perHostRollbackMs'))} ms per host, one after another: the`,
    `default rollout is one wave with maxParallel 1, and the parent rolls a wave back with the wave's maxParallel).`,
    '',
    `**Rollback of ${big} hosts**: ${num(secs(seq))} s one after another, ${num(secs(par))} s in parallel (${num(seq / par, 1)}×; the`,
    `parallel figure is bounded by 2 cores running ${big} activations at once, the sequential one by ${big}× the task round`,
    'trips). Measured with a bench workflow (bench/workflows) that drives the product\'s own `rollbackHost` activity for',
    'every host, sequentially or with `Promise.all`, on the same worker.',
    rbp.length
      ? `Through the product (${rbpN} hosts, the last fails, one wave in the fleet file's \`rollout\`): the parent's compensation takes ${num(secs(rbpSeq))} s with maxParallel 1 and ${num(secs(rbpPar))} s with maxParallel ${rbpN} (${num(rbpSeq / rbpPar, 1)}×); the last host is back ${num(secs(rbpSeqLast))} s / ${num(secs(rbpParLast))} s after the failing activation (the revert runs first in both; with maxParallel ${rbpN} the hosts were also deployed in parallel). n=${rbp.filter((x) => x.maxParallel === 1).length} per setting.`
      : '',
    '',
    `**Growth**, per execution (Temporal's limits apply to each history separately; the fleet-lock child is not counted).`,
    `The wave child (default rollout: one wave of every host, maxParallel 1) writes ${num(fce.slope, 1)} events and`,
    `${num(fcb.slope / 1024, 2)} KiB per host (record, switch, verify and the two signals it sends), ${num(fce.intercept, 0)} events fixed.`,
    `The parent writes ${num(fe.slope, 1)} events and ${num(fb.slope / 1024, 2)} KiB per host, ${num(fe.intercept, 0)} fixed (merge, audit, one child per`,
    `wave, the fleet lock): its per-host growth is the two hostUpdate signals per healthy host (each a signal event, and a`,
    `workflow task when not batched with another); a halt adds ~${num(rbEvents, 1)} parent events per rolled-back host (the`,
    `rollbackHost activity and its workflow task run in the parent). Temporal warns at 10,240 events / 10 MB per execution:`,
    `a wave child reaches it at ~${maxWave} hosts in the wave; the parent at ~${maxHealthy} hosts for a healthy deployment and`,
    `~${maxWorst} when the last host fails and every host is rolled back (bytes would allow ~${Math.floor((10 * 1024 * 1024 - fb.intercept) / fb.slope)} parent /`,
    `~${Math.floor((10 * 1024 * 1024 - fcb.intercept) / fcb.slope)} per wave). With the default rollout the single wave binds first (~${Math.min(maxWave, maxHealthy)} hosts);`,
    `splitting the fleet into waves moves the bound to the parent, whose per-host cost is the signals plus the rollbacks`,
    `(plus a few events per wave for the child's start and close). Worker peak RSS: ${wPeak}; API peak RSS: ${aPeak}.`,
    '',
    `**Costs on the path**: one SSH login per host per deployment (rollbacks within the session pool's 60 s idle window reuse it);`,
    `TCP_NODELAY is set on the HostSession socket (Node records it on the socket; Nagle would cost ${num((r.ssh.reusedNagle as Stat).median)} ms per exec`,
    `instead of ${num(rtt, 1)}). bundleWorkflowCode takes ${num(bundleS, 1)} s: the bench builds it once and hands the code to every`,
    `worker, which then starts in ${num(startB, 1)} s; workers/main.ts passes no bundle, so every worker process bundles at`,
    `start (${num(startP, 1)} s).`,
    '',
    '## What was tried, and proposed changes',
    '',
    `1. **Fewer task round trips per host.** Same activities, bench workflow, N=${r.plan.variantsN}: the product's sequence`,
    `   (record, switch, verify as three activities) ${fmt(stat(r.variants['three-activities'].perHostMs), ' ms')} per host; record and verify as *local`,
    `   activities* ${fmt(stat(r.variants['local-reads'].perHostMs), ' ms')}; no separate verify activity (switchTo already re-reads the host and fails`,
    `   with phase "verify" when it is not on the target) ${fmt(stat(r.variants['no-separate-verify'].perHostMs), ' ms')}.`,
    `   ${overlap(r.variants['three-activities'].perHostMs, r.variants['local-reads'].perHostMs) && overlap(r.variants['three-activities'].perHostMs, r.variants['no-separate-verify'].perHostMs) ? 'On this run the ranges overlap: the saving is below the noise of this shared 2-core machine (the host commands vary by ±100 ms per host between runs).' : 'The ranges do not overlap.'}`,
    `   Landed (patched('b-speed-local-reads'), workflows/host-reads.ts): record and verify run as local activities in the product's`,
    `   wave, so section 1 now counts ${num(md(bd.map((b) => b.wftPerHost)), 1)} workflow tasks per host (one per switch, plus the wave's own) and its`,
    '   activity figures include the two local reads (timed from their markers). A merged record+switch+verify activity was not',
    '   tried: the recorded generation must be in the history before the switch starts (the saga\'s way back), which one activity cannot give.',
    `2. **Status polling** (tried, to see whether queries add workflow tasks): the product with the API polled every`,
    `   500 ms (as the CLI does) ${num(poll)} ms per host, ${num(pollW, 1)} workflow tasks per host; without polling ${num(noPoll)} ms, ${num(noPollW, 1)}.`,
    `   ${overlap(r.productPoll.map((p) => p.hostsMs / p.n), r.productNoPoll.map((p) => p.hostsMs / p.n)) ? 'No measurable cost: queries are answered by the worker without adding history or slowing the host steps.' : 'The difference is above the noise.'}`,
    '   Workflow tasks per host are counted in the wave child (3 activities + 2 signals sent); queries go to the parent.',
    '3. **Parallel compensation** (now in the product: within a wave, up to the wave\'s maxParallel). The default rollout',
    `   is one wave with maxParallel 1, so a fleet file without \`rollout\` still rolls back one host at a time (bench workflow:`,
    `   ${num(secs(seq))} s sequential → ${num(secs(par))} s unbounded for ${big} hosts). The rollback parallelism is tied to the deploy`,
    '   parallelism; a separate rollback bound would let a fleet deploy one at a time yet roll back quickly.',
    '4. **Revert beside the hosts** (now in the product, patched(\'b-speed-compensate-together\')): the GitHub revert used to run',
    `   before the first host rollback and delay it by the revert's ${num(halt('revertMs'))} ms on the stand-in (more against real GitHub, and its`,
    '   retries on rate limits add to it). Both now start in one workflow task inside the non-cancellable scope; the audit entry waits for both.',
    `5. **Prebuilt workflow bundle for workers/main.ts**: bundle once at build time (\`bundleWorkflowCode\` → a file, then`,
    `   \`workflowBundle: { codePath }\`): worker start ${num(startP, 1)} s → ~${num(startB, 1)} s, and no webpack in production.`,
    '6. **Redundant reads**: a host gets 7 SSH execs where 5 are needed (record and verify re-read what switchTo reads);',
    `   at ~${num(rtt, 0)} ms per exec on a reused connection this is small next to the task round trips; dropping verifyHost (1.) removes one.`,
    '',
    'Method: product runs are started through the API (POST /api/deployments) and timed from the workflow histories (server',
    'clock) of the deployment and of the wave/build children it started (ChildWorkflowExecutionStarted; not the fleet lock); the failing host\'s own command log (epoch ms) gives the moment its activation exited. The baseline is',
    '`bench/baseline.sh` (OpenSSH client, the fleet\'s client key, a known_hosts file, StrictHostKeyChecking=yes); each',
    'remote command brackets itself with bash `$EPOCHREALTIME`, which gives the commands\' own time. Runs alternate',
    'product and baseline; every flake.lock version is new, so every run fetches, evaluates and builds afresh.',
    'Raw results of each run are kept in .nixfleet/bench/ (ignored by git); `--render FILE` re-renders this file from one.',
    '',
  ].join('\n');
}

const entry = argv.render ? Promise.resolve(output(JSON.parse(readFileSync(argv.render as string, 'utf8')) as Results)) : main();
entry.then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
