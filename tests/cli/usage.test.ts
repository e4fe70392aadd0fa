/**
 * Usage errors exit 64, as the CLI documents, and never reach the API (issue 12, bug 9): `--pr 1e3`
 * deployed pull request 1000, and `--pr -1` exited 1. bin/nixfleet is spawned as an operator runs it,
 * pointed at a local HTTP server that records every request it receives.
 */
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { EXIT, formatList, formatStatus } from '../../src/cli/main';

const BIN = join(__dirname, '..', '..', 'bin', 'nixfleet');
const FLEET = join(__dirname, '..', '..', 'examples', 'fleet.yaml');
let server: Server;
let base = '';
const requests: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ deploymentId: 'deploy-recorded' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});
beforeEach(() => {
  requests.length = 0;
});

async function nixfleet(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, NIXFLEET_API_URL: base, NIXFLEET_TOKEN: 'op-token-0123456789abcdef' }, stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.end();
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { code, out, err };
}

test.each([['1e3'], ['-1'], ['--pr=-1'], ['0'], ['1.5'], ['0x10'], ['42abc'], [' 42'], ['99999999999']])(
  'when deploy is given --pr %s, then it exits 64 naming --pr and sends nothing',
  async (pr) => {
    const args = pr.startsWith('--pr=') ? ['deploy', '--fleet', FLEET, pr, '--no-wait'] : ['deploy', '--fleet', FLEET, '--pr', pr, '--no-wait'];
    const r = await nixfleet(args);
    expect({ code: r.code, requests }).toEqual({ code: EXIT.usage, requests: [] });
    expect(r.err).toMatch(/--pr/);
  },
);

test('when a command is given an option it does not know, then it exits 64 and sends nothing', async () => {
  const r = await nixfleet(['deploy', '--fleet', FLEET, '--pr', '42', '--force']);
  expect({ code: r.code, requests }).toEqual({ code: EXIT.usage, requests: [] });
  expect(r.err).toMatch(/--force/);
});

test('when deploy is given a plain pull request number, then it is sent as that number', async () => {
  const r = await nixfleet(['deploy', '--fleet', FLEET, '--pr', '42', '--no-wait']);
  expect({ code: r.code, out: r.out.trim(), requests }).toEqual({ code: EXIT.ok, out: 'started deploy-recorded', requests: ['POST /api/deployments'] });
});

test('status shows the audit entries the store refused (issue 12, bug 1: reported, not lost silently)', () => {
  const text = formatStatus({
    deploymentId: 'deploy-acme.fleet.pr1',
    phase: 'closed',
    outcome: 'succeeded',
    repository: { owner: 'acme', name: 'fleet', branch: 'main' },
    change: { kind: 'pull-request', number: 1 },
    hosts: [],
    audit: [],
    auditFailures: [{ seq: 2, action: 'merge', type: 'AuditRefused', error: 'audit record refused: deploymentId: Too big' }],
  });
  expect(text).toContain('⚠ 1 audit entry refused by the audit store');
  expect(text).toContain('#2 merge: AuditRefused: audit record refused: deploymentId: Too big');
});

test('list fits its columns whatever the length of a deployment id (up to 360 characters)', () => {
  const long = `deploy-${'a'.repeat(39)}.${'r_5f'.repeat(25)}.pr7`;
  const lines = formatList([
    { deploymentId: long, status: 'RUNNING', phase: 'deploying', startTime: '2026-12-01T23:00:00.000Z' },
    { deploymentId: 'deploy-acme.fleet.pr1', status: 'COMPLETED', phase: 'closed', outcome: 'failed-rolled-back', startTime: '2026-12-01T22:00:00.000Z' },
  ]).split('\n');
  expect(lines).toHaveLength(3);
  // Every column starts at the same offset on every line.
  const starts = (l: string) => ['STATUS', 'RUNNING', 'COMPLETED'].map((w) => l.indexOf(w)).filter((i) => i >= 0);
  expect(new Set(lines.map((l) => starts(l)[0])).size).toBe(1);
  expect(lines[2]).toMatch(/closed\s+failed-rolled-back\s+2026-12-01T22/);
});

test('a dry run with --diff prints what each host will change, and --diff without --dry-run is a usage error', async () => {
  const { formatPlan } = await import('../../src/cli/main');
  const p = `/nix/store/${'a'.repeat(32)}`;
  const text = formatPlan({
    deploymentId: 'deploy-acme.fleet.pr1',
    repository: { owner: 'acme', name: 'fleet', branch: 'main' },
    change: { kind: 'pull-request', number: 1 },
    flakeRef: 'github:acme/fleet/<merge-sha>',
    onFailure: { revert: 'commit', rollbackHosts: true },
    diffedAt: { sha: 'b'.repeat(40), source: 'pull-request-head' },
    failureBudget: 0,
    buildFirst: false,
    healthChecks: 0,
    held: [],
    waves: [
      {
        name: 'all',
        maxParallel: 1,
        bakeSeconds: 0,
        hosts: [
          {
            name: 'h1',
            kind: 'nixos',
            address: 'root@h1:22',
            generationNow: { number: 42, storePath: `${p}-s42` },
            commands: [],
            closureDiff: {
              from: `${p}-s42`,
              to: `${p}-s43`,
              changes: [
                { name: 'firefox', from: ['128.0'], to: ['129.0'], kind: 'upgraded', sizeDeltaBytes: 2_202_009 },
                { name: 'libfoo', from: ['1.0'], to: [], kind: 'removed' },
              ],
              added: 0,
              removed: 1,
              upgraded: 1,
              fromClosureBytes: 1_000_000,
              toClosureBytes: 3_000_000,
              sizeDeltaBytes: 2_000_000,
            },
          },
          { name: 'h2', kind: 'nixos', address: 'root@h2:22', generationNow: { number: 7, storePath: `${p}-s7` }, commands: [], closureDiffError: 'h2: evaluation or build failed (exit 1): boom' },
        ],
      },
    ],
  });
  expect(text).toContain(`changes: built at the pull request's head ${'b'.repeat(12)} (into the hosts' stores only)`);
  expect(text).toContain('      will change: 0 added, 1 removed, 1 upgraded; closure +1.9 MiB\n        ~ firefox 128.0 → 129.0 (+2.1 MiB)\n        - libfoo 1.0');
  expect(text).toContain('      will change: unknown (h2: evaluation or build failed (exit 1): boom)');
  const r = await nixfleet(['deploy', '--fleet', FLEET, '--pr', '1', '--diff']);
  expect({ code: r.code, requests }).toEqual({ code: EXIT.usage, requests: [] });
  expect(r.err).toMatch(/--diff goes with --dry-run/);
});
