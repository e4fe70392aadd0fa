/**
 * Temporal's own client configuration (@temporalio/envconfig): one temporal.toml profile serves the
 * `temporal` CLI and nixfleet alike. Against a real dev server: the profile's address and namespace
 * reach the server from the resolved options (client and native connection) and from the API process
 * configured by the profile alone; the environment overrides the profile; the old TEMPORAL_TLS_* names
 * still work, with a deprecation warning; mTLS through a TLS front (client certificates required) made
 * with a CA and certificates the test issues, since the dev server speaks no TLS itself.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect, type AddressInfo } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { readEnv, resolveTemporal, TemporalEnv } from '../../src/config';
import { freePort, locateTemporalBinary } from '../../testkit/dev-server';
import { startTestTemporal, waitFor, type TestTemporal } from '../support/temporal';

const ROOT = join(__dirname, '..', '..');
let t: TestTemporal;
let dir: string;
let profileFile: string;

beforeAll(async () => {
  t = await startTestTemporal();
  dir = mkdtempSync(join(tmpdir(), 'nixfleet-envconfig-'));
  profileFile = join(dir, 'temporal.toml');
  writeFileSync(
    profileFile,
    [
      '[profile.default]',
      'address = "127.0.0.1:1"',
      '',
      '[profile.fleet]',
      `address = "${t.server.address}"`,
      `namespace = "${t.server.namespace}"`,
      '',
    ].join('\n'),
  );
});
afterAll(async () => {
  await t?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const resolve = (vars: Record<string, string>, warnings: string[] = []) => resolveTemporal(readEnv(TemporalEnv, vars), (m) => warnings.push(m));

test('when TEMPORAL_CONFIG_FILE and TEMPORAL_PROFILE name a profile, then the client and the native connection reach the dev server in its namespace', async () => {
  const target = resolve({ TEMPORAL_CONFIG_FILE: profileFile, TEMPORAL_PROFILE: 'fleet' });
  expect(target).toEqual({ connection: { address: t.server.address }, namespace: t.server.namespace });
  const connection = await Connection.connect(target.connection);
  const native = await NativeConnection.connect(target.connection);
  try {
    const ns = await connection.workflowService.describeNamespace({ namespace: target.namespace });
    expect(ns.namespaceInfo?.name).toBe(t.server.namespace);
    const info = await native.workflowService.getSystemInfo({});
    expect(info.serverVersion).toBeTruthy();
  } finally {
    await native.close();
    await connection.close();
  }
});

test('when the temporal CLI is given the same profile, then it reaches the same server (one profile serves both)', () => {
  const r = spawnSync(locateTemporalBinary(), ['operator', 'namespace', 'describe', '--output', 'json'], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, TEMPORAL_CONFIG_FILE: profileFile, TEMPORAL_PROFILE: 'fleet' },
  });
  expect(`${r.status} ${r.stderr}`).toBe('0 ');
  expect((JSON.parse(r.stdout) as { namespaceInfo: { name: string } }).namespaceInfo.name).toBe(t.server.namespace);
});

test('when environment variables are set beside the profile, then they win; an unknown profile is a configuration error', () => {
  expect(resolve({ TEMPORAL_CONFIG_FILE: profileFile, TEMPORAL_PROFILE: 'fleet', TEMPORAL_NAMESPACE: 'other' }).namespace).toBe('other');
  expect(resolve({ TEMPORAL_CONFIG_FILE: profileFile }).connection.address).toBe('127.0.0.1:1');
  // Nothing configured: the embedded dev server's defaults (HOME without a temporal.toml).
  expect(resolve({ HOME: dir })).toEqual({ connection: { address: '127.0.0.1:7233' }, namespace: 'default' });
  expect(() => resolve({ TEMPORAL_CONFIG_FILE: profileFile, TEMPORAL_PROFILE: 'nope' })).toThrow(/configuration error: Temporal client configuration \(.*temporal\.toml\): Profile 'nope' not found/);
});

test('when the deprecated TEMPORAL_TLS_CERT / _KEY / _CA are set, then they still configure mTLS, with a warning naming the new name each', () => {
  const pem = (name: string, body: string): string => {
    const f = join(dir, name);
    writeFileSync(f, body);
    return f;
  };
  const cert = pem('client.crt', 'CERT');
  const key = pem('client.key', 'KEY');
  const ca = pem('ca.crt', 'CA');
  const warnings: string[] = [];
  const target = resolve({ HOME: dir, TEMPORAL_ADDRESS: 'temporal.example:7233', TEMPORAL_TLS_CERT: cert, TEMPORAL_TLS_KEY: key, TEMPORAL_TLS_CA: ca, TEMPORAL_TLS_SERVER_NAME: 'temporal.internal' }, warnings);
  expect(target.connection.tls).toEqual({ serverNameOverride: 'temporal.internal', serverRootCACertificate: Buffer.from('CA'), clientCertPair: { crt: Buffer.from('CERT'), key: Buffer.from('KEY') } });
  expect(warnings.sort()).toEqual([
    "TEMPORAL_TLS_CA is deprecated: use TEMPORAL_TLS_SERVER_CA_CERT_PATH (Temporal's own name, shared with the temporal CLI) or a profile in temporal.toml",
    "TEMPORAL_TLS_CERT is deprecated: use TEMPORAL_TLS_CLIENT_CERT_PATH (Temporal's own name, shared with the temporal CLI) or a profile in temporal.toml",
    "TEMPORAL_TLS_KEY is deprecated: use TEMPORAL_TLS_CLIENT_KEY_PATH (Temporal's own name, shared with the temporal CLI) or a profile in temporal.toml",
  ]);
  // The new names give the same, silently.
  const quiet: string[] = [];
  const same = resolve({ HOME: dir, TEMPORAL_ADDRESS: 'temporal.example:7233', TEMPORAL_TLS_CLIENT_CERT_PATH: cert, TEMPORAL_TLS_CLIENT_KEY_PATH: key, TEMPORAL_TLS_SERVER_CA_CERT_PATH: ca, TEMPORAL_TLS_SERVER_NAME: 'temporal.internal' }, quiet);
  expect(same).toEqual(target);
  expect(quiet).toEqual([]);
  expect(() => resolve({ HOME: dir, TEMPORAL_TLS_CERT: cert })).toThrow('TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH go together');
});

test('when the API process is configured by the profile alone, then it lists deployments from that server', async () => {
  const tokens = join(dir, 'tokens.json');
  writeFileSync(tokens, JSON.stringify({ tokens: [{ token: 'env-token-0123456789abcdef', identity: 'eve', role: 'viewer' }] }));
  const port = await freePort();
  const child = spawn(process.execPath, ['--require', require.resolve('tsx/cjs'), join(ROOT, 'src', 'api', 'main.ts')], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, TEMPORAL_CONFIG_FILE: profileFile, TEMPORAL_PROFILE: 'fleet', NIXFLEET_API_TOKENS_FILE: tokens, NIXFLEET_API_PORT: String(port), NIXFLEET_AUDIT_DB: join(dir, 'audit.db'), NIXFLEET_SEARCH_ATTRIBUTES: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise((r) => child.once('exit', r));
  try {
    const res = await waitFor(
      'the API to list deployments',
      async () => {
        if (child.exitCode !== null) return { exited: out };
        const r = await fetch(`http://127.0.0.1:${port}/api/deployments`, { headers: { authorization: 'Bearer env-token-0123456789abcdef' } }).catch(() => undefined);
        return r ? { status: r.status, body: (await r.json()) as unknown } : undefined;
      },
      100_000,
      200,
    );
    expect(res).toMatchObject({ status: 200, body: { deployments: expect.any(Array) } });
  } finally {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
  }
});

describe('mTLS with a profile', () => {
  let front: ReturnType<typeof createTlsServer>;
  let frontAddress = '';
  const clients: string[] = [];
  const tlsDir = (): string => join(dir, 'tls');

  const openssl = (args: string[]): void => void execFileSync('openssl', args, { cwd: tlsDir(), stdio: ['ignore', 'ignore', 'pipe'] });
  beforeAll(async () => {
    execFileSync('mkdir', ['-p', tlsDir()]);
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    openssl(['req', '-x509', ...ec, '-subj', '/CN=nixfleet test CA', '-days', '2', '-keyout', 'ca.key', '-out', 'ca.crt']);
    for (const [name, subj, ext] of [
      ['server', '/CN=temporal.test', 'subjectAltName=DNS:temporal.test'],
      ['client', '/CN=nixfleet-worker', 'extendedKeyUsage=clientAuth'],
    ] as const) {
      openssl(['req', ...ec, '-subj', subj, '-addext', ext, '-keyout', `${name}.key`, '-out', `${name}.csr`]);
      openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-copy_extensions', 'copy', '-out', `${name}.crt`]);
    }
    const [devHost, devPort] = t.server.address.split(':');
    // A TLS front that requires a client certificate from the CA, then passes gRPC (h2) to the server.
    front = createTlsServer(
      { key: readFileSync(join(tlsDir(), 'server.key')), cert: readFileSync(join(tlsDir(), 'server.crt')), ca: readFileSync(join(tlsDir(), 'ca.crt')), requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2'] },
      (sock: TLSSocket) => {
        clients.push(String(sock.getPeerCertificate().subject?.CN));
        const up = tcpConnect(Number(devPort), devHost);
        sock.pipe(up).pipe(sock);
        sock.on('error', () => up.destroy());
        up.on('error', () => sock.destroy());
      },
    );
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', () => r()));
    frontAddress = `127.0.0.1:${(front.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => front?.close(r));
  });

  const profile = (withClientCert: boolean): string => {
    const f = join(tlsDir(), `temporal-${withClientCert ? 'mtls' : 'ca-only'}.toml`);
    writeFileSync(
      f,
      [
        '[profile.secure]',
        `address = "${frontAddress}"`,
        `namespace = "${t.server.namespace}"`,
        '[profile.secure.tls]',
        `server_ca_cert_path = "${join(tlsDir(), 'ca.crt')}"`,
        'server_name = "temporal.test"',
        ...(withClientCert ? [`client_cert_path = "${join(tlsDir(), 'client.crt')}"`, `client_key_path = "${join(tlsDir(), 'client.key')}"`] : []),
        '',
      ].join('\n'),
    );
    return f;
  };

  test("when the profile names the client certificate, key and CA, then the worker's native connection, the client and the temporal CLI reach the server over mTLS", async () => {
    const target = resolve({ HOME: dir, TEMPORAL_CONFIG_FILE: profile(true), TEMPORAL_PROFILE: 'secure' });
    const native = await NativeConnection.connect(target.connection);
    const connection = await Connection.connect(target.connection);
    try {
      expect((await native.workflowService.describeNamespace({ namespace: target.namespace })).namespaceInfo?.name).toBe(t.server.namespace);
      expect((await connection.workflowService.describeNamespace({ namespace: target.namespace })).namespaceInfo?.name).toBe(t.server.namespace);
    } finally {
      await native.close();
      await connection.close();
    }
    // The temporal CLI on the same profile goes through the same mTLS front (run asynchronously: the
    // front lives in this process's event loop).
    const cli = await new Promise<{ status: number | null; stderr: string }>((done) => {
      const c = spawn(locateTemporalBinary(), ['operator', 'namespace', 'describe', '--output', 'json'], {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, TEMPORAL_CONFIG_FILE: profile(true), TEMPORAL_PROFILE: 'secure' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      c.on('exit', (status) => done({ status, stderr }));
    });
    expect(`${cli.status} ${cli.stderr}`).toBe('0 ');
    expect(clients.length).toBeGreaterThanOrEqual(3);
    expect(new Set(clients)).toEqual(new Set(['nixfleet-worker']));
  });

  test('when the profile has no client certificate, then the TLS front refuses the connection', async () => {
    const target = resolve({ HOME: dir, TEMPORAL_CONFIG_FILE: profile(false), TEMPORAL_PROFILE: 'secure' });
    const before = clients.length;
    await expect(NativeConnection.connect(target.connection)).rejects.toThrow();
    expect(clients.length).toBe(before);
  });
});
