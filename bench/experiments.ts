/**
 * Where the orchestration's time goes (issue 14): `npx tsx bench/experiments.ts [--hosts 10] [--repeats 3] [--only a,b]`.
 *
 * Every configuration gets its own Temporal dev server (its flags), its own worker child (its options)
 * and runs the same healthy deployment through the product (DeploymentService → deployWorkflow) on the
 * same stand-in fleet. The configurations take turns, round by round, so the machine's load falls on
 * all of them alike; each figure is compared with `base` (today's defaults) measured in the same run.
 * Prints a Markdown table (paste into BENCHMARKS.md) and writes the raw figures to .nixfleet/bench/.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, Runtime, bundleWorkflowCode } from '@temporalio/worker';
import { DeploymentService } from '../src/service/deployments';
import { startDevServer, type DevServer, type DevServerOptions } from '../testkit/dev-server';
import { startWorld } from '../testkit/world';
import type { WorkerTuning } from '../workers/worker';
import { slimWorkflowBundle } from '../workers/bundle';
import { startChild, type Child } from './lib/children';
import { fetchDeploymentHistories } from './lib/history';
import { writeExperimentsSection } from './lib/markdown';
import { num, stat } from './lib/stats';
import type { WorkerChildConfig } from './worker-child';
import type { BenchDeployInput, DeployVariant } from './workflows';
import { fillFlakeRef } from '../src/domain/flake-ref';

const { values: argv } = parseArgs({
  options: {
    hosts: { type: 'string', default: '10' },
    repeats: { type: 'string', default: '3' },
    only: { type: 'string' },
    /** write the table into BENCHMARKS.md's experiments section */
    write: { type: 'boolean', default: false },
    /** re-render the table from a raw file of .nixfleet/bench/ */
    render: { type: 'string' },
  },
});
const N = Number(argv.hosts);
const REPEATS = Number(argv.repeats);
const say = (s: string): void => void process.stdout.write(`${s}\n`);

interface Config {
  name: string;
  what: string;
  /** in-memory server (no --db-filename) */
  memory?: boolean;
  server?: Pick<DevServerOptions, 'sqlitePragmas' | 'dynamicConfig'>;
  tuning?: WorkerTuning;
  workerLog?: 'silent' | 'info' | 'debug';
  /** NODE_OPTIONS for the worker child (V8 heap flags) */
  nodeOptions?: string;
  /** a bench workflow variant instead of the product's deployWorkflow (workflow shape experiments) */
  variant?: DeployVariant;
}

const ONE_PARTITION = { 'matching.numTaskqueueReadPartitions': 1, 'matching.numTaskqueueWritePartitions': 1 };
const EAGER = { 'system.enableActivityEagerExecution': true };
const CONFIGS: Config[] = [
  { name: 'base', what: "today's defaults: SQLite file, the server's pragmas and dynamic config, the SDK's worker options" },
  { name: 'memory', what: 'in-memory server (no --db-filename): no durability, the floor of the persistence cost', memory: true },
  { name: 'wal-normal', what: 'SQLite file, journal_mode=wal, synchronous=NORMAL', server: { sqlitePragmas: { journal_mode: 'wal', synchronous: 'NORMAL' } } },
  { name: 'partitions-1', what: 'matching.numTaskqueueRead/WritePartitions=1', server: { dynamicConfig: ONE_PARTITION } },
  { name: 'eager', what: 'system.enableActivityEagerExecution=true (the worker takes its activity in the workflow task reply)', server: { dynamicConfig: EAGER } },
  { name: 'wal-normal+eager', what: 'WAL + synchronous=NORMAL and eager activities, 4 partitions (isolates the partition setting)', server: { sqlitePragmas: { journal_mode: 'wal', synchronous: 'NORMAL' }, dynamicConfig: EAGER } },
  {
    name: 'tuned',
    what: 'partitions 1, eager activities, WAL + synchronous=NORMAL (the candidate default)',
    server: { sqlitePragmas: { journal_mode: 'wal', synchronous: 'NORMAL' }, dynamicConfig: { ...ONE_PARTITION, ...EAGER } },
  },
  { name: 'polls-2', what: 'worker: maxConcurrentWorkflowTaskPolls=2, maxConcurrentActivityTaskPolls=2', tuning: { maxConcurrentWorkflowTaskPolls: 2, maxConcurrentActivityTaskPolls: 2 } },
  { name: 'cache-20', what: 'worker: maxCachedWorkflows=20 (the SDK sizes it from the heap limit: ~2500 here)', tuning: { maxCachedWorkflows: 20 } },
  { name: 'heap-small', what: 'worker: NODE_OPTIONS=--max-semi-space-size=2 (V8 young generation 2 MiB per semi-space instead of 16+)', nodeOptions: '--max-semi-space-size=2' },
  { name: 'log-info', what: 'worker logs at info to a file (the product default level) instead of silent', workerLog: 'info' },
  { name: 'shape-3-acts', what: 'bench workflow: record, switch, verify as 3 activities (the wave child without signals to the parent)', variant: 'three-activities' },
  { name: 'shape-local-reads', what: 'bench workflow: record and verify as local activities, switch as an activity', variant: 'local-reads' },
  { name: 'shape-3-acts-tuned', what: 'bench workflow, 3 activities, on the tuned server (the embedded default)', variant: 'three-activities', server: { sqlitePragmas: { journal_mode: 'wal', synchronous: 'NORMAL' }, dynamicConfig: { ...ONE_PARTITION, ...EAGER } } },
  { name: 'shape-local-reads-tuned', what: 'bench workflow, local reads, on the tuned server', variant: 'local-reads', server: { sqlitePragmas: { journal_mode: 'wal', synchronous: 'NORMAL' }, dynamicConfig: { ...ONE_PARTITION, ...EAGER } } },
];

interface Sample {
  perHostMs: number;
  handoffMs: number[];
  s2sMs: number[];
  wftQueueMs: number;
  wftWorkerMs: number;
  wftPerHost: number;
  actsPerHostMs: number;
  totalMs: number;
}

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const configs = argv.only ? CONFIGS.filter((c) => c.name === 'base' || (argv.only as string).split(',').includes(c.name)) : CONFIGS;
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-exp-'));
  const stops: Array<() => Promise<unknown>> = [];
  const load0 = loadavg();
  process.once('SIGINT', () => {
    void (async () => {
      for (const s of stops.reverse()) await s().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
      process.exit(130);
    })();
  });
  try {
    const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} };
    const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('./workflows'), logger: quiet });
    const bundleFile = join(dir, 'bundle.js');
    writeFileSync(bundleFile, slimWorkflowBundle(bundle.code));
    const names = Array.from({ length: N }, (_, i) => `x${String(i + 1).padStart(3, '0')}`);
    const world = await startWorld({ hosts: names.map((name) => ({ name, kind: 'nixos' as const })) });
    stops.push(() => world.stop());
    const keyFile = join(dir, 'key');
    const knownHostsFile = join(dir, 'known_hosts');
    writeFileSync(keyFile, world.fleet.clientPrivateKey, { mode: 0o600 });
    writeFileSync(knownHostsFile, world.fleet.knownHosts);

    const live: Array<{ c: Config; server: DevServer; client: Client; worker: Child<unknown>; service: DeploymentService; taskQueue: string; samples: Sample[] }> = [];
    for (const c of configs) {
      const server = await startDevServer({ ...(c.memory ? {} : { dbFile: join(dir, `${c.name}.db`) }), uiPort: false, logFile: join(dir, `${c.name}.log`), sqlitePragmas: {}, dynamicConfig: {}, ...c.server });
      stops.push(() => server.stop());
      const connection = await Connection.connect({ address: server.address });
      stops.push(() => connection.close());
      const client = new Client({ connection, namespace: server.namespace });
      const taskQueue = `exp-${c.name}`;
      const cfg: WorkerChildConfig = {
        mode: 'bundle',
        bundleFile,
        address: server.address,
        namespace: server.namespace,
        taskQueue,
        githubUrl: world.github.baseUrl,
        githubToken: world.token,
        keyFile,
        knownHostsFile,
        ...(c.tuning ? { tuning: c.tuning } : {}),
        ...(c.workerLog ? { logLevel: c.workerLog, logFile: join(dir, `${c.name}.worker.log`) } : {}),
      };
      const worker = await startChild<unknown>('worker-child.ts', { BENCH_WORKER: JSON.stringify(cfg), ...(c.nodeOptions ? { NODE_OPTIONS: c.nodeOptions } : {}) });
      stops.push(() => worker.stop());
      live.push({ c, server, client, worker, service: new DeploymentService(client, taskQueue, { searchAttributes: true }), taskQueue, samples: [] });
    }
    let seq = 0;
    const deployOnce = async (x: (typeof live)[number], hosts: string[]): Promise<Sample> => {
      const version = `e${++seq}`;
      if (x.c.variant) {
        const { fleetFlakeLock } = await import('../testkit/fleet');
        const sha = await world.github.pushCommit(world.owner, world.repo, world.branch, { 'flake.lock': fleetFlakeLock({ version }) }, `exp ${version}`);
        const flakeRef = fillFlakeRef(world.flakeRefTemplate, { owner: world.owner, repo: world.repo, sha });
        const specs = hosts.map((n) => {
          const h = world.fleet.host(n);
          return { name: h.name, address: h.address, port: h.port, user: h.user, kind: h.kind, attr: h.name };
        });
        const input: BenchDeployInput = { deploymentId: `exp-${version}`, hosts: specs, flakeRef, variant: x.c.variant };
        const handle = await x.client.workflow.start('benchDeployHosts', { taskQueue: x.taskQueue, workflowId: `exp-${version}`, args: [input] });
        await handle.result();
        const { summarize } = await import('./lib/history');
        const h = summarize(await handle.fetchHistory());
        const acts = h.activities.sort((a, b) => a.scheduled - b.scheduled);
        const wfts = h.workflowTaskTimings.slice(1);
        return {
          perHostMs: (h.closeMs - h.startMs) / hosts.length,
          handoffMs: acts.slice(1).map((a, i) => a.scheduled - (acts[i] as { closed: number }).closed),
          s2sMs: acts.map((a) => a.started - a.scheduled),
          wftQueueMs: wfts.reduce((s, w) => s + (w.started - w.scheduled), 0) / hosts.length,
          wftWorkerMs: wfts.reduce((s, w) => s + (w.completed - w.started), 0) / hosts.length,
          wftPerHost: wfts.length / hosts.length,
          actsPerHostMs: acts.reduce((s, a) => s + (a.closed - a.started), 0) / hosts.length,
          totalMs: h.closeMs - h.startMs,
        };
      }
      const pr = await world.openLockUpdate(version);
      const fleet = world.fleetFile({ revert: 'commit', rollbackHosts: true }, hosts);
      fleet.manualWindow = 0;
      const { deploymentId } = await x.service.start({ fleet, change: { pullRequest: pr.number } }, 'bench');
      const status = (await x.client.workflow.getHandle(deploymentId).result()) as { outcome: string; failure?: string };
      if (status.outcome !== 'succeeded') throw new Error(`${x.c.name}: ${deploymentId}: ${status.outcome}: ${status.failure}`);
      const d = await fetchDeploymentHistories(x.client, deploymentId);
      const acts = d.merged.activities.filter((a) => ['recordGeneration', 'switchHost', 'verifyHost'].includes(a.name)).sort((a, b) => a.scheduled - b.scheduled);
      const from = acts[0]?.scheduled ?? 0;
      const to = acts[acts.length - 1]?.closed ?? 0;
      const wfts = d.merged.workflowTaskTimings.filter((w) => w.scheduled >= from && w.completed <= to + 1000);
      return {
        perHostMs: (to - from) / hosts.length,
        handoffMs: acts.slice(1).map((a, i) => a.scheduled - (acts[i] as { closed: number }).closed),
        s2sMs: acts.map((a) => a.started - a.scheduled),
        wftQueueMs: wfts.reduce((s, w) => s + (w.started - w.scheduled), 0) / hosts.length,
        wftWorkerMs: wfts.reduce((s, w) => s + (w.completed - w.started), 0) / hosts.length,
        wftPerHost: wfts.length / hosts.length,
        actsPerHostMs: acts.reduce((s, a) => s + (a.closed - a.started), 0) / hosts.length,
        totalMs: d.merged.closeMs - d.merged.startMs,
      };
    };
    // Warm-up: one small deployment per configuration (caches, connections, the first build of a version).
    for (const x of live) await deployOnce(x, names.slice(0, 2));
    for (let r = 0; r < REPEATS; r++) {
      for (const x of live) {
        const s = await deployOnce(x, names);
        x.samples.push(s);
        say(`  #${r + 1} ${x.c.name}: ${num(s.perHostMs)} ms per host, handoff median ${num(stat(s.handoffMs).median)} ms, schedule→start median ${num(stat(s.s2sMs).median)} ms (load ${num(loadavg()[0] as number)})`);
      }
    }
    const load1 = loadavg();
    const raw: Raw = { N, REPEATS, load0, load1, date: new Date().toISOString(), args: process.argv.slice(2), results: live.map((x) => ({ config: x.c, samples: x.samples, peakRssMiB: x.worker.peakRssMiB() })) };
    const table = renderTable(raw);
    say('');
    say(table);
    const out = resolve(__dirname, '..', '.nixfleet', 'bench');
    mkdirSync(out, { recursive: true });
    const file = join(out, `experiments-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, JSON.stringify(raw));
    writeFileSync(join(out, 'experiments-latest.md'), `${table}\n`);
    if (argv.write) writeSection(raw);
    say(`raw: ${file}`);
  } finally {
    for (const s of stops.reverse()) await s().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Raw {
  N: number;
  REPEATS: number;
  load0: number[];
  load1: number[];
  date: string;
  args: string[];
  results: Array<{ config: Config; samples: Sample[]; peakRssMiB: number }>;
}

function writeSection(raw: Raw): void {
  writeExperimentsSection(resolve(__dirname, '..', 'BENCHMARKS.md'), `## Experiments: where the time goes (\`npx tsx bench/experiments.ts${raw.args.length ? ` ${raw.args.join(' ')}` : ''}\`)\n\n${renderTable(raw)}`);
}

function renderTable(raw: Raw): string {
  const med = (xs: number[]) => stat(xs).median;
  const base = raw.results.find((x) => x.config.name === 'base') as Raw['results'][number];
  const baseShape = raw.results.find((x) => x.config.name === 'shape-3-acts');
  const orch = (s: Sample) => s.perHostMs - s.actsPerHostMs;
  const rows = raw.results.map((x) => {
    // Shapes on the tuned server compare with the three activities on the same server.
    const shapeRef = raw.results.find((y) => y.config.name === (x.config.server ? 'shape-3-acts-tuned' : 'shape-3-acts')) ?? baseShape;
    const ref = x.config.variant && shapeRef ? shapeRef : base;
    const per = stat(x.samples.map((s) => s.perHostMs));
    const ratio = stat(x.samples.map((s, i) => s.perHostMs / (ref.samples[i] as Sample).perHostMs));
    const o = stat(x.samples.map(orch));
    const oRatio = stat(x.samples.map((s, i) => orch(s) / orch(ref.samples[i] as Sample)));
    const hand = x.samples.flatMap((s) => s.handoffMs);
    const s2s = x.samples.flatMap((s) => s.s2sMs);
    return `| ${x.config.name} | ${x.config.what} | ${num(per.median)} ms (${num(per.min)}–${num(per.max)}), ${num(ratio.median)}× | **${num(o.median)} ms** (${num(o.min)}–${num(o.max)}), **${num(oRatio.median)}×** vs ${ref.config.name} (${num(oRatio.min)}–${num(oRatio.max)}) | ${num(med(hand))} / ${num(stat(hand).q3)} ms | ${num(med(s2s))} ms | ${num(med(x.samples.map((s) => s.wftQueueMs)))} / ${num(med(x.samples.map((s) => s.wftWorkerMs)))} ms, ${num(med(x.samples.map((s) => s.wftPerHost)), 1)} | ${num(med(x.samples.map((s) => s.actsPerHostMs)))} ms | ${num(x.peakRssMiB, 0)} MiB |`;
  });
  return [
    `${raw.N} hosts, one healthy deployment per configuration per round, ${raw.REPEATS} rounds (the configurations take turns, each on its own dev server and worker, all on the same stand-in fleet), ${raw.date.slice(0, 16).replace('T', ' ')} UTC; load average ${raw.load0.map((l) => num(l)).join(', ')} at the start, ${raw.load1.map((l) => num(l)).join(', ')} at the end.`,
    'Ratios are per round against `base` (product) or `shape-3-acts` (bench workflow; `shape-3-acts-tuned` for the shapes on the tuned server), medians with (min–max). *Orchestration per host* is the time per host less the time inside the (non-local) activities: for the local-reads shapes it still includes the two local reads.',
    '',
    '| config | what changed | time per host, ratio | orchestration per host, ratio | handoff (activity closed → next scheduled) median / q3 | activity schedule→start median | per host: workflow task queued / in worker, tasks | per host: inside activities | worker peak RSS |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

if (argv.render) {
  const raw = JSON.parse(readFileSync(argv.render as string, 'utf8')) as Raw;
  raw.args ??= [];
  raw.date ??= new Date().toISOString();
  for (const r of raw.results) r.peakRssMiB ??= NaN;
  say(renderTable(raw));
  if (argv.write) writeSection(raw);
  process.exit(0);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
