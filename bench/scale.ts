/**
 * The scale benchmark (issue 13, items 2 and 6): `npm run bench:scale -- --sizes 300,600,1000`
 * (or `--hosts N` for one size; `--fail-at F` fixes the failing host, default 90% of each size).
 *
 * Deploys N simulated hosts (testkit/simfleet: one process, an SSH endpoint per host) in waves of
 * `--wave` (500) with `--max-parallel` (50) on a real Temporal dev server and the product's worker; the
 * failing host's activation fails, so the deployment halts, reverts the merge and rolls every switched
 * host back. Prints per size the history events and bytes of the parent and of the largest child, and
 * what the parent's bytes carry (its input, its children's inputs and results, its activities' inputs,
 * its result). Then, from the measured sizes, the fitted growth of the parent (least squares: fixed +
 * per host × n, events and bytes), each kind of child's events and bytes per host and its size at the
 * product's default child sizes, and the largest fleet whose parent stays under Temporal's 10,240-event
 * and 10 MB warnings. `--json` prints the figures as JSON too. Everything it starts is stopped at the end.
 *
 * The worker runs in its own process (bench/worker-child.ts: the product's worker on the workflows
 * bundled once here, so its peak is the deployment's, not webpack's; `--in-process` keeps it here), and the API in another (bench/api-child.ts), read throughout by `--viewers` (20)
 * dashboards (the summary and a page of hosts every `--viewer-interval-ms`, 250): the growth table
 * gets each process's peak RSS (VmHWM), the fleet's peak of SSH connections and the read latencies.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { slimWorkflowBundle } from '../workers/bundle';
import { FULL_RESULT_HOSTS } from '../src/domain/host-refs';
import { fitLine, largestUnder } from '../testkit/simfleet/growth';
import { startDevServer } from '../testkit/dev-server';
import { runScaleDeployment, startScaleWorld, type ExecutionCost } from '../testkit/simfleet/scale';
import { DEFAULT_HOSTS_PER_CHILD } from '../workflows/deploy';
import { hostOpsPerChild } from '../workflows/host-ops';
import { startChild } from './lib/children';
import { rssOf } from './lib/proc';
import { stat } from './lib/stats';
import { startViewers, type ViewerFigures } from './lib/viewers';
import type { WorkerChildConfig } from './worker-child';

const WARNING_EVENTS = 10_240;
const WARNING_BYTES = 10 * 1024 * 1024;

interface SizeRun {
  n: number;
  failAt: number;
  wallMs: number;
  outcome: string;
  parent: ExecutionCost;
  children: ExecutionCost[];
  largestChild?: ExecutionCost;
  peakConnections: number;
  /** Read on the simulated hosts after the run. */
  hostsCheck: { onSeeded: number; reportedRolledBack: number; rolledBackOnRecorded?: number };
  /** Peak resident set, MiB: the worker's own process (absent with --in-process), the API's, this process's (the simulated fleet). */
  rss: { workerMiB?: number; apiMiB: number; benchMiB: number };
  viewers: ViewerFigures;
}

interface Options {
  wave: number;
  maxParallel: number;
  failAt: number;
  commandMs: number;
  viewers: number;
  viewerIntervalMs: number;
  inProcess: boolean;
  dir: string;
  /** The product's workflows, bundled once and slimmed as workers/bundle.ts does (the worker process loads it). */
  bundleFile: string;
}

const API_TOKEN = 'bench-scale-viewer-token-0123456789';

async function runSize(t: { client: Client; nativeConnection: NativeConnection; namespace: string; address: string }, n: number, o: Options): Promise<SizeRun> {
  const world = await startScaleWorld(n, { commandMs: o.commandMs });
  const taskQueue = `bench-scale-${process.pid}-${n}`;
  // The API in its own process, read by `viewers` dashboards for the whole deployment.
  const api = await startChild<{ port: number }>('api-child.ts', { BENCH_API: JSON.stringify({ address: t.address, namespace: t.namespace, taskQueue, token: API_TOKEN }) });
  let viewers: ReturnType<typeof startViewers> | undefined;
  let workerMiB: number | undefined;
  try {
    const keyFile = join(o.dir, `client-${n}.key`);
    const knownHostsFile = join(o.dir, `known_hosts-${n}`);
    writeFileSync(keyFile, world.fleet.clientPrivateKey, { mode: 0o600 });
    writeFileSync(knownHostsFile, world.fleet.knownHosts);
    const externalWorker = async (queue: string, slots: number): Promise<{ stop(): Promise<void> }> => {
      const cfg: WorkerChildConfig = { mode: 'bundle', bundleFile: o.bundleFile, address: t.address, namespace: t.namespace, taskQueue: queue, githubUrl: world.github.baseUrl, githubToken: world.token, keyFile, knownHostsFile, activitySlots: slots };
      const child = await startChild('worker-child.ts', { BENCH_WORKER: JSON.stringify(cfg) });
      return {
        async stop() {
          workerMiB = child.peakRssMiB();
          await child.stop();
        },
      };
    };
    const r = await runScaleDeployment(
      t,
      world,
      {
        hosts: n,
        waveSize: o.wave,
        maxParallel: o.maxParallel,
        failAt: o.failAt,
        ...(o.inProcess ? {} : { externalWorker }),
        onStarted: (id) => {
          if (o.viewers > 0) viewers = startViewers(`http://127.0.0.1:${api.ready.port}`, API_TOKEN, id, o.viewers, o.viewerIntervalMs);
        },
      },
      taskQueue,
    );
    const viewed = viewers ? await viewers.stop() : { viewers: 0, reads: 0, latenciesMs: [], notOk: {}, notOkSamples: [], stale: 0 };
    viewers = undefined;
    // From the simulated hosts themselves, not from what the deployment reports: where each one is now.
    const seeded = world.fleet.hosts.filter((e) => e.host.profileGeneration().storePath.endsWith('-seed-2')).length;
    const reportedBack = r.status.hosts.filter((h) => h.state === 'rolled-back');
    // Above FULL_RESULT_HOSTS the result's rows carry no generations: then only the hosts' own state says it.
    const withBefore = reportedBack.filter((h) => h.before);
    const landed = withBefore.filter((h) => world.fleet.host(h.name).host.profileGeneration().storePath === h.before?.storePath).length;
    const hostsCheck = { onSeeded: seeded, reportedRolledBack: reportedBack.length, ...(withBefore.length > 0 ? { rolledBackOnRecorded: landed } : {}) };
    const rss = { ...(workerMiB !== undefined ? { workerMiB } : {}), apiMiB: api.peakRssMiB(), benchMiB: rssOf(process.pid).peakMiB };
    return { n, failAt: o.failAt, wallMs: r.wallMs, hostsCheck, outcome: `${r.status.outcome ?? '?'} (failed host ${r.status.failedHost ?? '-'})`, parent: r.parent, children: r.children, ...(r.largestChild ? { largestChild: r.largestChild } : {}), peakConnections: r.peakConnections, rss, viewers: viewed };
  } finally {
    await viewers?.stop();
    await api.stop();
    await world.stop();
  }
}

/** Per host of a child, the largest over the children of a kind (wave, rollback, release) with hosts. */
function perChildHost(runs: SizeRun[], kind: string): { events: number; bytes: number; id: string } | undefined {
  let best: { events: number; bytes: number; id: string } | undefined;
  for (const r of runs) {
    for (const c of r.children) {
      if (childKind(c) !== kind || c.hosts === 0) continue;
      const e = c.events / c.hosts;
      const b = c.bytes / c.hosts;
      if (!best || b > best.bytes) best = { events: e, bytes: b, id: c.workflowId };
    }
  }
  return best;
}

function childKind(c: ExecutionCost): string {
  if (c.type === 'waveWorkflow') return 'wave';
  if (c.workflowId.includes('-rollback-')) return 'rollback';
  if (c.workflowId.includes('-release')) return 'release';
  return c.type;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      hosts: { type: 'string', default: '1000' },
      sizes: { type: 'string' },
      wave: { type: 'string', default: '500' },
      'max-parallel': { type: 'string', default: '50' },
      'fail-at': { type: 'string' },
      'command-ms': { type: 'string', default: '1' },
      viewers: { type: 'string', default: '20' },
      'viewer-interval-ms': { type: 'string', default: '250' },
      'in-process': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  const sizes = (values.sizes ?? values.hosts).split(',').map((x) => Number(x.trim()));
  const wave = Number(values.wave);
  const maxParallel = Number(values['max-parallel']);
  for (const [k, v] of Object.entries({ wave, 'max-parallel': maxParallel, 'viewer-interval-ms': Number(values['viewer-interval-ms']) })) {
    if (!Number.isSafeInteger(v) || v < 1) throw new Error(`--${k}: a whole number, at least 1; got ${String(v)}`);
  }
  const viewerCount = Number(values.viewers);
  if (!Number.isSafeInteger(viewerCount) || viewerCount < 0) throw new Error(`--viewers: a whole number, at least 0; got ${String(values.viewers)}`);
  for (const n of sizes) if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--sizes/--hosts: whole numbers, at least 1; got ${String(n)}`);
  const failAtOf = (n: number): number => (values['fail-at'] !== undefined ? Number(values['fail-at']) : Math.floor(n * 0.9));
  for (const n of sizes) {
    const f = failAtOf(n);
    if (!Number.isSafeInteger(f) || f < 0 || f > n) throw new Error(`--fail-at: a whole number within 0..hosts (${n}); got ${String(f)}`);
  }
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-bench-scale-'));
  const server = await startDevServer({ dbFile: join(dir, 'temporal.db'), uiPort: false, logFile: join(dir, 'server.log') });
  const connection = await Connection.connect({ address: server.address });
  const nativeConnection = await NativeConnection.connect({ address: server.address });
  const client = new Client({ connection, namespace: server.namespace });
  try {
    const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} };
    const bundleFile = join(dir, 'workflow-bundle.js');
    writeFileSync(bundleFile, slimWorkflowBundle((await bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), logger: quiet })).code));
    const runs: SizeRun[] = [];
    for (const n of sizes) {
      const r = await runSize({ client, nativeConnection, namespace: server.namespace, address: server.address }, n, {
        wave,
        maxParallel,
        failAt: failAtOf(n),
        commandMs: Number(values['command-ms']),
        viewers: viewerCount,
        viewerIntervalMs: Number(values['viewer-interval-ms']),
        inProcess: values['in-process'] ?? false,
        dir,
        bundleFile,
      });
      runs.push(r);
      printRun(r, wave, maxParallel);
    }
    // The fit: over the sizes above FULL_RESULT_HOSTS when there are two (below it the result carries every host's generations).
    const large = runs.filter((r) => r.n > FULL_RESULT_HOSTS);
    const fitted = new Set(large.map((r) => r.n)).size >= 2 ? large : runs;
    const eventsLine = fitLine(fitted.map((r) => ({ n: r.n, y: r.parent.events })));
    const bytesLine = fitLine(fitted.map((r) => ({ n: r.n, y: r.parent.bytes })));
    const byEvents = largestUnder(eventsLine, WARNING_EVENTS);
    const byBytes = largestUnder(bytesLine, WARNING_BYTES);
    const kids = (['wave', 'rollback', 'release'] as const).map((k) => ({ kind: k, per: perChildHost(runs, k), size: k === 'wave' ? DEFAULT_HOSTS_PER_CHILD : hostOpsPerChild(undefined) }));
    console.log(`\ngrowth fitted over ${fitted.map((r) => r.n).join(', ')} hosts (least squares, the parent):`);
    const rows: Array<[string, string]> = [
      ['parent: events = fixed + per host × n', `${eventsLine.fixed.toFixed(0)} + ${eventsLine.perHost.toFixed(4)} × n`],
      ['parent: bytes = fixed + per host × n', `${fmtBytes(bytesLine.fixed)} + ${bytesLine.perHost.toFixed(0)} B × n`],
      ['largest fleet under 10,240 events (parent)', fmtHosts(byEvents)],
      ['largest fleet under 10 MB (parent)', fmtHosts(byBytes)],
      ['largest fleet under both (parent)', fmtHosts(Math.min(byEvents, byBytes))],
    ];
    for (const k of kids) {
      if (!k.per) continue;
      const ev = k.per.events * k.size;
      const by = k.per.bytes * k.size;
      rows.push([`largest ${k.kind} child per host: events / bytes`, `${k.per.events.toFixed(1)} / ${k.per.bytes.toFixed(0)} B → at ${k.size} hosts ${Math.round(ev)} events, ${fmtBytes(by)} (${ev < WARNING_EVENTS && by < WARNING_BYTES ? 'under' : 'OVER'} both warnings)`]);
    }
    for (const [k, v] of rows) console.log(`${k.padEnd(62)} ${v}`);
    console.log('\n| hosts | wall time | hosts/s | parent events / bytes | largest child events / bytes | worker peak RSS | API peak RSS | bench (fleet) peak RSS | peak SSH conns | viewers: read p50 / p95 / max | viewers: not 200 | viewers: stale answers |');
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const r of runs) console.log(tableRow(r));
    if (values.json) console.log(JSON.stringify({ wave, maxParallel, runs: runs.map((r) => ({ ...r, children: r.children.length, viewers: { ...r.viewers, latenciesMs: stat(r.viewers.latenciesMs) } })), eventsLine, bytesLine, byEvents, byBytes, children: kids }));
  } finally {
    await nativeConnection.close().catch(() => undefined);
    await connection.close().catch(() => undefined);
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function printRun(r: SizeRun, wave: number, maxParallel: number): void {
  const waveKids = r.children.filter((c) => c.type === 'waveWorkflow');
  const rows: Array<[string, string]> = [
    ['hosts / waves of / maxParallel / failing host', `${r.n} / ${wave} / ${maxParallel} / ${r.failAt}`],
    ['outcome', r.outcome],
    ['wall time (start → closed)', `${(r.wallMs / 1000).toFixed(1)} s (${(r.n / (r.wallMs / 1000)).toFixed(1)} hosts/s)`],
    ['executions (parent + children)', `1 + ${r.children.length} (${waveKids.length} wave, ${r.children.length - waveKids.length} rollback/release)`],
    ['parent: events / bytes', `${r.parent.events} / ${fmtBytes(r.parent.bytes)} (signals ${r.parent.signals}, activities ${r.parent.activities}; ${(r.parent.bytes / r.n).toFixed(0)} B and ${(r.parent.events / r.n).toFixed(3)} events per host)`],
    ['largest child: events / bytes', r.largestChild ? `${r.largestChild.events} / ${fmtBytes(r.largestChild.bytes)} (${childKind(r.largestChild)}, ${r.largestChild.hosts} hosts)` : '-'],
    ['peak open SSH connections (at the fleet)', String(r.peakConnections)],
    ['peak RSS: worker / API / this process (the simulated fleet)', `${r.rss.workerMiB !== undefined ? `${r.rss.workerMiB.toFixed(0)} MiB` : 'in this process'} / ${r.rss.apiMiB.toFixed(0)} MiB / ${r.rss.benchMiB.toFixed(0)} MiB`],
    [`viewers (${r.viewers.viewers}): summary + hosts page, read p50 / p95 / max`, `${viewerLine(r.viewers).latency} over ${r.viewers.reads} reads; not 200: ${viewerLine(r.viewers).notOk}; answered from the API's last answer (staleMs): ${r.viewers.stale}`],
    ['executions over 10,240 events / over 10 MB', `${[r.parent, ...r.children].filter((c) => c.events > WARNING_EVENTS).length} / ${[r.parent, ...r.children].filter((c) => c.bytes > WARNING_BYTES).length}`],
    ['hosts on their generation from before (read on the hosts)', `${r.hostsCheck.onSeeded} of ${r.n}; reported rolled back ${r.hostsCheck.reportedRolledBack}${r.hostsCheck.rolledBackOnRecorded !== undefined ? `, of them on the recorded generation ${r.hostsCheck.rolledBackOnRecorded}` : ' (the result has no generations above 200 hosts)'}`],
  ];
  console.log('');
  for (const [k, v] of rows) console.log(`${k.padEnd(62)} ${v}`);
  for (const x of r.viewers.notOkSamples) console.log(`  viewer read not 200: ${x}`);
  console.log('parent bytes by what they carry:');
  for (const [k, v] of Object.entries(r.parent.bytesBy).sort((a, b) => b[1] - a[1])) console.log(`  ${k.padEnd(60)} ${fmtBytes(v).padStart(9)}  ${(v / r.n).toFixed(0).padStart(5)} B/host`);
}

function viewerLine(v: ViewerFigures): { latency: string; notOk: string } {
  const sorted = [...v.latenciesMs].sort((a, b) => a - b);
  const q = (p: number): string => (sorted.length ? `${sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!.toFixed(0)} ms` : 'n/a');
  const notOk = Object.entries(v.notOk).map(([k, c]) => `${c} × ${k === '0' ? 'no answer' : k}`).join(', ') || '0';
  return { latency: `${q(0.5)} / ${q(0.95)} / ${sorted.length ? `${sorted[sorted.length - 1]!.toFixed(0)} ms` : 'n/a'}`, notOk };
}

function tableRow(r: SizeRun): string {
  const v = viewerLine(r.viewers);
  const mib = (x: number | undefined): string => (x === undefined ? 'in-process' : `${x.toFixed(0)} MiB`);
  const child = r.largestChild ? `${r.largestChild.events} / ${fmtBytes(r.largestChild.bytes)}` : '-';
  return `| ${r.n.toLocaleString('en-US')} | ${(r.wallMs / 1000).toFixed(0)} s | ${(r.n / (r.wallMs / 1000)).toFixed(1)} | ${r.parent.events} / ${fmtBytes(r.parent.bytes)} | ${child} | ${mib(r.rss.workerMiB)} | ${mib(r.rss.apiMiB)} | ${mib(r.rss.benchMiB)} | ${r.peakConnections} | ${v.latency} (${r.viewers.viewers} viewers, ${r.viewers.reads} reads) | ${v.notOk} | ${r.viewers.stale} |`;
}

function fmtHosts(n: number): string {
  return Number.isFinite(n) ? `~${n.toLocaleString('en-US')} hosts` : 'unbounded (no growth measured)';
}

function fmtBytes(b: number): string {
  return b >= 1024 * 1024 ? `${(b / 1024 / 1024).toFixed(2)} MB` : `${(b / 1024).toFixed(0)} KB`;
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
