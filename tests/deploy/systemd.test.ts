/**
 * The systemd units in deploy/systemd: systemd's own checker accepts them without a warning, their
 * sandbox scores as hardened, and the product started the way a unit starts it (its Environment= lines,
 * its LoadCredential= files under $CREDENTIALS_DIRECTORY, nothing else) reads its secrets from there.
 * systemd is not PID 1 on the test machines, so the sandbox itself is not run here.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CREDENTIALS, withCredentials } from '../../src/config';
import { freePort } from '../../testkit/dev-server';
import { startTestTemporal, waitFor, type TestTemporal } from '../support/temporal';

const ROOT = join(__dirname, '..', '..');
const UNITS = join(ROOT, 'deploy', 'systemd');
const NAMES = ['nixfleet-worker.service', 'nixfleet-api.service'];
/** Where the units expect the package (npm install of the tarball into /opt/nixfleet). */
const INSTALLED = '/opt/nixfleet/node_modules/nixfleet-deployer/';

function analyze(args: string[]): { status: number | null; output: string } {
  const r = spawnSync('systemd-analyze', args, { encoding: 'utf8' });
  if (r.error) throw new Error(`systemd-analyze: ${r.error.message} (scripts/install-system-deps.sh installs the systemd package)`);
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

/** A unit's [Service] settings, in order (a key may repeat). */
function unitSettings(name: string): Array<[string, string]> {
  return readFileSync(join(UNITS, name), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#') && !l.startsWith('[') && l.includes('='))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as [string, string]);
}
const all = (name: string, key: string): string[] => unitSettings(name).filter(([k]) => k === key).map(([, v]) => v);
const one = (name: string, key: string): string => {
  const v = all(name, key);
  if (v.length !== 1) throw new Error(`${name}: expected one ${key}=, found ${v.length}`);
  return v[0] as string;
};

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nixfleet-systemd-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the units', () => {
  test.each(NAMES)('when systemd-analyze verifies %s, then it passes with no warning at all', (name) => {
    const r = analyze(['verify', join(UNITS, name)]);
    expect(r).toEqual({ status: 0, output: '' });
  });

  test('when a unit has a typo or a bad value, then the same check fails (the check can fail)', () => {
    const text = readFileSync(join(UNITS, 'nixfleet-api.service'), 'utf8');
    for (const [from, to] of [
      ['ProtectSystem=strict', 'ProtectSystm=strict'],
      ['ProtectSystem=strict', 'ProtectSystem=strictest'],
      ['ExecStart=/usr/bin/node', 'ExecStart=/nonexistent/node'],
    ] as const) {
      const d = mkdtempSync(join(dir, 'bad-'));
      writeFileSync(join(d, 'nixfleet-api.service'), text.replace(from, to));
      const r = analyze(['verify', join(d, 'nixfleet-api.service')]);
      expect(`${to}: ${r.status === 0 && r.output === '' ? 'accepted' : 'refused'}`).toBe(`${to}: refused`);
    }
  });

  test("when README's GitHub App drop-in is added to the worker unit, then it still verifies, loads only ssh-key and github-app-key, and the product reads both", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const dropIn = /```ini\n(\[Service\][^`]*github-app-key[^`]*)```/.exec(readme)?.[1];
    expect(dropIn).toBeDefined();
    const d = mkdtempSync(join(dir, 'app-'));
    // A drop-in's [Service] lines apply after the unit's: the same as appending them.
    writeFileSync(join(d, 'nixfleet-worker.service'), `${readFileSync(join(UNITS, 'nixfleet-worker.service'), 'utf8')}\n${dropIn}`);
    expect(analyze(['verify', join(d, 'nixfleet-worker.service')])).toEqual({ status: 0, output: '' });
    const lines = (dropIn as string).split('\n').filter((l) => l.startsWith('LoadCredential='));
    expect(lines[0]).toBe('LoadCredential=');
    const names = lines.slice(1).map((l) => l.slice('LoadCredential='.length).split(':')[0]);
    expect(names).toEqual(['ssh-key', 'github-app-key']);
    const read = new Set(Object.values(CREDENTIALS).map((c) => c.credential));
    for (const n of names) expect(read.has(n as string)).toBe(true);
  });

  test.each(NAMES)('when %s is scored by systemd-analyze security, then its exposure is at most 2.0 and the hardening the issue asks for is there', (name) => {
    const r = analyze(['security', '--offline=true', '--threshold=20', join(UNITS, name)]);
    expect(r.status).toBe(0);
    expect(r.output).toMatch(/Overall exposure level for nixfleet-(worker|api)\.service: [01]\.\d OK/);
    expect(one(name, 'User')).toBe('nixfleet');
    expect(one(name, 'ProtectSystem')).toBe('strict');
    expect(one(name, 'NoNewPrivileges')).toBe('yes');
    expect(one(name, 'StateDirectory')).toBe('nixfleet');
    expect(all(name, 'Environment')).toContain('NIXFLEET_AUDIT_DB=%S/nixfleet/audit.db');
  });

  test('when the units load credentials, then every name is one the product reads, and the secrets the issue names are there', () => {
    const known = new Set(Object.values(CREDENTIALS).map((c) => c.credential));
    const loaded = NAMES.flatMap((n) => all(n, 'LoadCredential').map((v) => `${n} ${v.split(':')[0]}`));
    expect(loaded).toEqual(['nixfleet-worker.service github-token', 'nixfleet-worker.service ssh-key', 'nixfleet-api.service api-tokens']);
    for (const l of loaded) expect(known.has(l.split(' ')[1] as string)).toBe(true);
    // The dedicated user, for systemd-sysusers.
    expect(readFileSync(join(UNITS, 'nixfleet.sysusers.conf'), 'utf8')).toMatch(/^u nixfleet - /m);
  });
});

describe('credentials from $CREDENTIALS_DIRECTORY', () => {
  test('when a secret setting is unset, then the credential fills it (content or path); when it is set, the environment wins', () => {
    const creds = mkdtempSync(join(dir, 'creds-'));
    writeFileSync(join(creds, 'github-token'), 'ghp_from_credential\n');
    writeFileSync(join(creds, 'ssh-key'), 'KEY');
    const filled = withCredentials({ CREDENTIALS_DIRECTORY: creds });
    expect(filled.GITHUB_TOKEN).toBe('ghp_from_credential');
    expect(filled.NIXFLEET_SSH_KEY).toBe(join(creds, 'ssh-key'));
    // A credential that is not there leaves the setting unset (the schema then names it).
    expect(filled.NIXFLEET_API_TOKENS_FILE).toBeUndefined();
    expect(withCredentials({ CREDENTIALS_DIRECTORY: creds, GITHUB_TOKEN: 'from-env' }).GITHUB_TOKEN).toBe('from-env');
    expect(withCredentials({ GITHUB_TOKEN: 'x' })).toEqual({ GITHUB_TOKEN: 'x' });
  });
});

// --- the product started as the unit starts it -------------------------------------------------------

/**
 * How the test runs a unit's ExecStart from this checkout: the TypeScript source of the file the unit
 * names (never a dist/ that may be stale). tests/deploy/package.test.ts runs the built package itself.
 */
function command(name: string): { cmd: string; args: string[] } {
  const exec = one(name, 'ExecStart').split(/\s+/);
  expect(exec[0]).toBe('/usr/bin/node');
  // Node's own flags (the worker's: workers/node-flags.ts) come before the script, and go with it.
  const flags = exec.slice(1, -1);
  expect(flags.every((f) => f.startsWith('--'))).toBe(true);
  const script = exec[exec.length - 1] as string;
  expect(script.startsWith(INSTALLED)).toBe(true);
  const rel = script.slice(INSTALLED.length);
  return { cmd: process.execPath, args: [...flags, '--require', require.resolve('tsx/cjs'), join(ROOT, rel.replace(/^dist\//, '').replace(/\.js$/, '.ts'))] };
}

interface Started {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/**
 * Starts a unit's command with the environment systemd would give it: its Environment= lines (with %S
 * the state root), STATE_DIRECTORY, and CREDENTIALS_DIRECTORY holding a copy (mode 0400) of each
 * LoadCredential= source, taken from `sources` by credential name. Nothing from this process's env
 * but PATH and HOME.
 */
function startAsUnit(name: string, sources: Record<string, string>, extra: Record<string, string>): Started {
  const root = mkdtempSync(join(dir, 'unit-'));
  const state = join(root, 'state');
  const creds = join(root, 'credentials', name);
  mkdirSync(join(state, 'nixfleet'), { recursive: true });
  mkdirSync(creds, { recursive: true });
  for (const v of all(name, 'LoadCredential')) {
    const cred = v.split(':')[0] as string;
    const src = sources[cred];
    if (!src) throw new Error(`the test has no source for credential ${cred}`);
    copyFileSync(src, join(creds, cred));
    chmodSync(join(creds, cred), 0o400);
  }
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: root, STATE_DIRECTORY: join(state, 'nixfleet'), CREDENTIALS_DIRECTORY: creds };
  for (const v of all(name, 'Environment')) {
    const k = v.slice(0, v.indexOf('='));
    env[k] = v.slice(v.indexOf('=') + 1).replace(/%S/g, state);
  }
  Object.assign(env, extra);
  const { cmd, args } = command(name);
  const child = spawn(cmd, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

async function stop(p: Started): Promise<void> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
  await p.exited;
}

describe('the product as the units start it', () => {
  let t: TestTemporal;
  beforeAll(async () => {
    t = await startTestTemporal();
  });
  afterAll(async () => t?.stop());

  test('when the API starts with its tokens only as a credential, then it serves them and writes the audit db in the state directory', async () => {
    const tokens = join(dir, 'api-tokens.json');
    writeFileSync(tokens, JSON.stringify({ tokens: [{ token: 'cred-token-0123456789abcdef', identity: 'carol', role: 'operator' }] }));
    const port = await freePort();
    const api = startAsUnit('nixfleet-api.service', { 'api-tokens': tokens }, { TEMPORAL_ADDRESS: t.server.address, TEMPORAL_NAMESPACE: t.server.namespace, NIXFLEET_API_PORT: String(port), NIXFLEET_SEARCH_ATTRIBUTES: '0' });
    try {
      const who = await waitFor(
        'the API to answer',
        async () => {
          if (api.child.exitCode !== null) return { exited: api.output() };
          const r = await fetch(`http://127.0.0.1:${port}/api/whoami`, { headers: { authorization: 'Bearer cred-token-0123456789abcdef' } }).catch(() => undefined);
          return r ? { status: r.status, body: (await r.json()) as unknown } : undefined;
        },
        100_000,
        200,
      );
      expect(who).toEqual({ status: 200, body: { identity: 'carol', role: 'operator' } });
      // The listening line names the audit store: for SQLite (the default), its file.
      expect(api.output()).toContain('"audit":');
      const auditDb = /"audit":"([^"]+)"/.exec(api.output())?.[1] ?? '';
      expect(auditDb.endsWith('/state/nixfleet/audit.db')).toBe(true);
      expect(existsSync(auditDb)).toBe(true);
    } finally {
      await stop(api);
    }
  });

  test('when the worker starts with its GitHub token and SSH key only as credentials, then it starts; with an empty token it names the setting', async () => {
    const token = join(dir, 'github-token');
    writeFileSync(token, 'ghp_0123456789abcdef\n');
    const key = join(dir, 'id_ed25519');
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    const knownHosts = join(dir, 'known_hosts');
    writeFileSync(knownHosts, '');
    const env = { TEMPORAL_ADDRESS: t.server.address, TEMPORAL_NAMESPACE: t.server.namespace, TEMPORAL_TASK_QUEUE: `systemd-${process.pid}`, NIXFLEET_KNOWN_HOSTS: knownHosts };
    const worker = startAsUnit('nixfleet-worker.service', { 'github-token': token, 'ssh-key': key }, env);
    try {
      const started = await waitFor(
        'the worker to start',
        () => (worker.child.exitCode !== null ? `exited: ${worker.output()}` : worker.output().includes('worker started') ? 'started' : undefined),
        150_000,
        200,
      );
      expect(started).toBe('started');
    } finally {
      await stop(worker);
    }
    // The same unit with an empty token credential: the configuration error names the setting.
    const empty = join(dir, 'empty');
    writeFileSync(empty, '');
    const refused = startAsUnit('nixfleet-worker.service', { 'github-token': empty, 'ssh-key': key }, env);
    const code = await refused.exited;
    expect(code).toBe(1);
    expect(refused.output()).toMatch(/configuration error:\n.*GITHUB_TOKEN/);
  }, 200_000);
});
