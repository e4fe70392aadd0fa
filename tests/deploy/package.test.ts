/**
 * The production build as a user gets it: `npm pack` (its prepack runs `npm run build`: tsc to dist/
 * and the prebuilt workflow bundle), then `npm install` of that tarball into an empty directory. The
 * installed `nixfleet` command works; the worker and the API run from dist/ with plain node (no tsx
 * installed at all), the worker on the prebuilt bundle, with the SDK's lines in its pino log. The
 * scripts they run are the ones docker-compose.temporal.yml and the Dockerfile name (the image holds
 * the same dist/ and production dependencies; no Docker engine runs here to build it).
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { freePort } from '../../testkit/dev-server';
import { startTestTemporal, waitFor, type TestTemporal } from '../support/temporal';
import { WORKER_NODE_FLAGS } from '../../workers/node-flags';

const ROOT = join(__dirname, '..', '..');
let dir: string;
let app: string;
let pkg: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nixfleet-pack-'));
  execFileSync('npm', ['pack', '--pack-destination', dir, '--loglevel=error'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'));
  if (!tarball) throw new Error('npm pack wrote no tarball');
  app = join(dir, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'nixfleet-install-test', private: true }));
  execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', join(dir, tarball)], { cwd: app, stdio: ['ignore', 'ignore', 'inherit'] });
  pkg = join(app, 'node_modules', 'nixfleet-deployer');
}, 600_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * What a compose service runs: `command: ["node", ...FLAGS, SCRIPT]` (plain node, no tsx; the worker
 * with its Node flags, workers/node-flags.ts).
 */
function composeCommand(service: 'worker' | 'api'): { flags: string[]; script: string } {
  const compose = parse(readFileSync(join(ROOT, 'docker-compose.temporal.yml'), 'utf8')) as { services: Record<string, { command?: string[] }> };
  const command = compose.services[service]?.command ?? [];
  expect(command[0]).toBe('node');
  const flags = command.slice(1, -1);
  expect(flags).toEqual(service === 'worker' ? [...WORKER_NODE_FLAGS] : []);
  return { flags, script: command[command.length - 1] as string };
}
const composeScript = (service: 'worker' | 'api'): string => composeCommand(service).script;

test('when the Docker image runs, then the compose commands and the Dockerfile CMD name built files run with plain node', () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const cmd = /^CMD (\[.*\])$/m.exec(dockerfile)?.[1];
  expect(JSON.parse(cmd ?? '[]')).toEqual(['node', ...composeCommand('worker').flags, composeScript('worker')]);
  expect(dockerfile).not.toMatch(/\btsx\b/);
  for (const service of ['worker', 'api'] as const) expect(existsSync(join(pkg, composeScript(service)))).toBe(true);
});

const nixfleet = (args: string[]): { status: number | null; out: string } => {
  const r = spawnSync(join(app, 'node_modules', '.bin', 'nixfleet'), args, { cwd: app, encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: app } });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
};

test('when the tarball is installed into an empty directory, then it holds the build and no TypeScript sources or tsx', () => {
  expect(existsSync(join(pkg, 'dist', 'workers', 'main.js'))).toBe(true);
  expect(existsSync(join(pkg, 'dist', 'src', 'api', 'main.js'))).toBe(true);
  expect(existsSync(join(pkg, 'dist', 'src', 'dashboard', 'public', 'app.js'))).toBe(true);
  expect(existsSync(join(pkg, 'dist', 'workflow-bundle.js'))).toBe(true);
  expect(existsSync(join(pkg, 'src'))).toBe(false);
  expect(existsSync(join(pkg, 'deploy', 'systemd', 'nixfleet-worker.service'))).toBe(true);
  // tsx is a development tool only: nothing installed for running it pulls it in.
  expect(existsSync(join(app, 'node_modules', 'tsx'))).toBe(false);
});

test('when the installed nixfleet command is run, then --help prints the usage and validate checks the example fleet', () => {
  const help = nixfleet(['--help']);
  expect(help.status).toBe(0);
  expect(help.out).toContain('nixfleet validate FLEET_FILE');
  const ok = nixfleet(['validate', join(pkg, 'examples', 'fleet.yaml')]);
  expect(ok).toEqual({ status: 0, out: `${join(pkg, 'examples', 'fleet.yaml')}: ok, 5 hosts: gpc0, hsb0, hsb1, alice-laptop, csb0\n` });
  const badFile = join(dir, 'bad.yaml');
  writeFileSync(badFile, 'repository: {owner: acme}\n');
  const bad = nixfleet(['validate', badFile]);
  expect(bad.status).not.toBe(0);
  expect(bad.out).toContain('repository.name');
});

describe('the worker and the API from the installed package, with plain node', () => {
  let t: TestTemporal;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    t = await startTestTemporal();
  });
  afterAll(async () => {
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) {
        const gone = new Promise((r) => c.once('exit', r));
        c.kill('SIGTERM');
        await gone;
      }
    }
    await t?.stop();
  });

  function start(service: 'worker' | 'api', env: Record<string, string>): { child: ChildProcess; out: () => string } {
    const { flags, script } = composeCommand(service);
    const child = spawn(process.execPath, [...flags, join(pkg, script)], { cwd: app, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: app, TEMPORAL_ADDRESS: t.server.address, TEMPORAL_NAMESPACE: t.server.namespace, NIXFLEET_AUDIT_DB: join(dir, 'audit.db'), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    return { child, out: () => out };
  }

  test('when the worker starts, then it loads the prebuilt workflow bundle and the SDK logs through the same pino logger', async () => {
    const key = join(dir, 'id_ed25519');
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    writeFileSync(join(dir, 'known_hosts'), '');
    const w = start('worker', { GITHUB_TOKEN: 'ghp_0123456789abcdef', NIXFLEET_SSH_KEY: key, NIXFLEET_KNOWN_HOSTS: join(dir, 'known_hosts'), TEMPORAL_TASK_QUEUE: `pack-${process.pid}` });
    const lines = await waitFor(
      'the worker to poll',
      () => {
        if (w.child.exitCode !== null) return { exited: w.out() };
        const json = w.out().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
        return json.some((l) => l.msg === 'Worker state changed' && (l.temporal as { state?: string } | undefined)?.state === 'RUNNING') ? json : undefined;
      },
      120_000,
      100,
    );
    const started = (lines as Array<Record<string, unknown>>).find((l) => l.msg === 'worker started');
    expect(started?.workflowBundle).toBe(join(pkg, 'dist', 'workflow-bundle.js'));
    // The SDK's own line, in the product's pino logger (same name, JSON, marked sdk).
    const sdk = (lines as Array<Record<string, unknown>>).find((l) => l.msg === 'Worker state changed');
    expect(sdk).toMatchObject({ name: 'nixfleet-worker', sdk: true, level: 30 });
    // No webpack run at start: the bundler's "Workflow bundle created" never appears.
    expect(w.out()).not.toContain('Workflow bundle created');
  });

  test('when the API starts, then it serves the dashboard and the API from dist', async () => {
    const tokens = join(dir, 'tokens.json');
    writeFileSync(tokens, JSON.stringify({ tokens: [{ token: 'pack-token-0123456789abcdef', identity: 'pat', role: 'viewer' }] }));
    const port = await freePort();
    const a = start('api', { NIXFLEET_API_TOKENS_FILE: tokens, NIXFLEET_API_PORT: String(port), NIXFLEET_SEARCH_ATTRIBUTES: '0' });
    const who = await waitFor(
      'the API to answer',
      async () => {
        if (a.child.exitCode !== null) return { exited: a.out() };
        const r = await fetch(`http://127.0.0.1:${port}/api/whoami`, { headers: { authorization: 'Bearer pack-token-0123456789abcdef' } }).catch(() => undefined);
        return r ? ((await r.json()) as unknown) : undefined;
      },
      60_000,
      100,
    );
    expect(who).toEqual({ identity: 'pat', role: 'viewer' });
    const page = await fetch(`http://127.0.0.1:${port}/dashboard/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<title>NixFleet Deployer</title>');
  });
});
