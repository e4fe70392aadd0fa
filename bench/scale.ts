/**
 * The scale benchmark (issue 13, items 2 and 6): `npm run bench:scale -- --hosts 10000 --fail-at 9000`.
 *
 * Deploys N simulated hosts (testkit/simfleet: one process, an SSH endpoint per host) in waves of
 * `--wave` (500) with `--max-parallel` (50) on a real Temporal dev server and the product's worker; the
 * host at `--fail-at` (default 90% of N) fails its activation, so the deployment halts, reverts the
 * merge and rolls every switched host back. Prints, per execution of the deployment, history events
 * and bytes (the parent's and the largest child's), wall time and hosts per second, and, from the
 * measured growth (the parent's events per child it ran; a child's events per host), the largest
 * fleet whose every execution stays under Temporal's 10,240-event warning. `--json` prints the figures
 * as JSON too. Everything it starts is stopped at the end.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { startDevServer } from '../testkit/dev-server';
import { runScaleDeployment, startScaleWorld, type ExecutionCost } from '../testkit/simfleet/scale';
import { DEFAULT_HOSTS_PER_CHILD } from '../workflows/deploy';
import { hostOpsPerChild } from '../workflows/host-ops';

const WARNING_EVENTS = 10_240;
const WARNING_BYTES = 10 * 1024 * 1024;

/** The parent's children for a fleet of `n` hosts in waves of `wave` with the product's child sizes. */
export function childrenFor(n: number, wave: number, perChild: number): number {
  const waveKids = Math.floor(n / wave) * Math.ceil(wave / perChild) + (n % wave > 0 ? Math.ceil((n % wave) / perChild) : 0);
  return waveKids + 2 * Math.ceil(n / hostOpsPerChild(undefined));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      hosts: { type: 'string', default: '1000' },
      wave: { type: 'string', default: '500' },
      'max-parallel': { type: 'string', default: '50' },
      'fail-at': { type: 'string' },
      'command-ms': { type: 'string', default: '1' },
      json: { type: 'boolean', default: false },
    },
  });
  const n = Number(values.hosts);
  const wave = Number(values.wave);
  const maxParallel = Number(values['max-parallel']);
  const failAt = values['fail-at'] !== undefined ? Number(values['fail-at']) : Math.floor(n * 0.9);
  for (const [k, v] of Object.entries({ hosts: n, wave, 'max-parallel': maxParallel, 'fail-at': failAt })) {
    if (!Number.isSafeInteger(v) || v < 0 || (k !== 'fail-at' && v < 1) || (k === 'fail-at' && v > n)) throw new Error(`--${k}: a whole number${k === 'fail-at' ? ' within 0..hosts' : ', at least 1'}; got ${String(v)}`);
  }
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-bench-scale-'));
  const server = await startDevServer({ dbFile: join(dir, 'temporal.db'), uiPort: false, logFile: join(dir, 'server.log') });
  const connection = await Connection.connect({ address: server.address });
  const nativeConnection = await NativeConnection.connect({ address: server.address });
  const client = new Client({ connection, namespace: server.namespace });
  const world = await startScaleWorld(n, { commandMs: Number(values['command-ms']) });
  try {
    const r = await runScaleDeployment({ client, nativeConnection, namespace: server.namespace }, world, { hosts: n, waveSize: wave, maxParallel, failAt }, `bench-scale-${process.pid}`);
    const wavesKids = r.children.filter((c) => c.type === 'waveWorkflow');
    const largestWave = wavesKids.reduce<ExecutionCost | undefined>((a, c) => (a === undefined || c.events > a.events ? c : a), undefined);
    const perChild = r.parent.events / Math.max(1, r.children.length);
    const perChildBytes = r.parent.bytes / Math.max(1, r.children.length);
    const perHostBytes = r.parent.bytes / n;
    const wavePerHost = Math.max(...wavesKids.filter((c) => c.hosts > 0).map((c) => c.events / c.hosts));
    // The largest fleet (waves of `wave`) whose parent stays under the warning at the measured growth.
    let lo = n;
    while (perChild * childrenFor(lo * 2, wave, DEFAULT_HOSTS_PER_CHILD) < WARNING_EVENTS) lo *= 2;
    let hi = lo * 2;
    while (hi - lo > 100) {
      const mid = Math.floor((lo + hi) / 2);
      if (perChild * childrenFor(mid, wave, DEFAULT_HOSTS_PER_CHILD) < WARNING_EVENTS) lo = mid;
      else hi = mid;
    }
    const rows: Array<[string, string]> = [
      ['hosts / waves of / maxParallel / failing host', `${n} / ${wave} / ${maxParallel} / ${failAt}`],
      ['outcome', `${r.status.outcome} (failed host ${r.status.failedHost ?? '-'})`],
      ['wall time (start → closed)', `${(r.wallMs / 1000).toFixed(1)} s`],
      ['hosts per second', (n / (r.wallMs / 1000)).toFixed(1)],
      ['executions (parent + children)', `1 + ${r.children.length} (${wavesKids.length} wave, ${r.children.length - wavesKids.length} rollback/release)`],
      ['parent: events / bytes', `${r.parent.events} / ${fmtBytes(r.parent.bytes)} (signals ${r.parent.signals}, activities ${r.parent.activities})`],
      ['largest child: events / bytes', r.largestChild ? `${r.largestChild.events} / ${fmtBytes(r.largestChild.bytes)} (${r.largestChild.workflowId.split('-').slice(-3).join('-')}, ${r.largestChild.hosts} hosts)` : '-'],
      ['largest wave child: events per host', largestWave ? wavePerHost.toFixed(1) : '-'],
      ['parent: events per child / bytes per host', `${perChild.toFixed(1)} / ${perHostBytes.toFixed(0)} B`],
      ['largest fleet under 10,240 events (parent, measured growth)', `~${lo.toLocaleString('en-US')} hosts`],
      ['largest fleet under 10 MB (parent, measured bytes per host)', `~${Math.floor(WARNING_BYTES / perHostBytes).toLocaleString('en-US')} hosts`],
      ['a wave child at the default size (200 hosts): events', `~${Math.round(wavePerHost * DEFAULT_HOSTS_PER_CHILD)}`],
      ['peak open SSH connections (at the fleet)', String(r.peakConnections)],
    ];
    for (const [k, v] of rows) console.log(`${k.padEnd(62)} ${v}`);
    if (values.json) console.log(JSON.stringify({ n, wave, maxParallel, failAt, wallMs: r.wallMs, parent: r.parent, largestChild: r.largestChild, children: r.children.length, perChild, perChildBytes, wavePerHost, largestFleet: lo, peakConnections: r.peakConnections }));
  } finally {
    await world.stop();
    await nativeConnection.close().catch(() => undefined);
    await connection.close().catch(() => undefined);
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
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
