/**
 * The simulated fleet as a process of its own, for runs where the worker must not share its CPU with
 * the fleet (benchmarks at thousands of hosts):
 *
 *   npx tsx testkit/simfleet/main.ts --hosts 10000 --out DIR [--home-manager-every 10]
 *       [--fail NAME=units|script|build|exit:N]… [--command-ms N] [--build-ms N] [--activation-ms N]
 *
 * Writes DIR/client_ed25519 (the deployer's key, 0600), DIR/known_hosts (every endpoint's key),
 * DIR/hosts.json (fleet-file host entries: name, address, port, user, kind, attr), then
 * DIR/stats.json every second (connections open, peak, accepted, commands) and prints `ready N` on
 * stdout. Stops on SIGINT / SIGTERM. Hosts are named h1…hN.
 */
import { mkdirSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startSimFleet } from './fleet';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      hosts: { type: 'string' },
      out: { type: 'string' },
      'home-manager-every': { type: 'string', default: '0' },
      fail: { type: 'string', multiple: true, default: [] },
      'command-ms': { type: 'string', default: '0' },
      'build-ms': { type: 'string', default: '0' },
      'activation-ms': { type: 'string', default: '0' },
    },
  });
  const int = (name: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name}: a whole number, at least ${min}; got ${JSON.stringify(v)}`);
    return n;
  };
  const n = int('hosts', values.hosts, 1);
  if (!values.out) throw new Error('--out: the directory for the key, known_hosts and hosts.json');
  const hmEvery = int('home-manager-every', values['home-manager-every'], 0);
  const out = values.out;
  mkdirSync(out, { recursive: true });
  const specs = Array.from({ length: n }, (_, i) => ({ name: `h${i + 1}`, kind: (hmEvery > 0 && (i + 1) % hmEvery === 0 ? 'home-manager' : 'nixos') as 'nixos' | 'home-manager' }));
  const fleet = await startSimFleet(specs, {
    latency: { commandMs: int('command-ms', values['command-ms'], 0), buildMs: int('build-ms', values['build-ms'], 0), activationMs: int('activation-ms', values['activation-ms'], 0) },
  });
  for (const f of values.fail ?? []) {
    const m = /^([A-Za-z0-9-]+)=(units|script|build|exit:(\d{1,3}))$/.exec(f);
    if (!m) throw new Error(`--fail: NAME=units|script|build|exit:N; got ${JSON.stringify(f)}`);
    const h = fleet.host(m[1] as string).host;
    if (m[2] === 'build') h.failBuild(true);
    else if (m[3] !== undefined) h.switchExit(Number(m[3]));
    else h.failActivation(m[2] as 'units' | 'script');
  }
  writeFileSync(join(out, 'client_ed25519'), fleet.clientPrivateKey, { mode: 0o600 });
  writeFileSync(join(out, 'known_hosts'), fleet.knownHosts);
  writeFileSync(join(out, 'hosts.json'), JSON.stringify(fleet.hosts.map((e) => ({ name: e.name, address: e.address, port: e.port, user: e.user, kind: e.kind, attr: e.name }))) + '\n');
  const writeStats = (): void => {
    const tmp = join(out, 'stats.json.tmp');
    writeFileSync(tmp, JSON.stringify(fleet.stats()) + '\n');
    renameSync(tmp, join(out, 'stats.json'));
  };
  writeStats();
  const timer = setInterval(writeStats, 1000);
  process.stdout.write(`ready ${n}\n`);
  const stop = (): void => {
    clearInterval(timer);
    writeStats();
    void fleet.stop().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`simfleet: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
});
