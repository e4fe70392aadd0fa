/**
 * The simulated fleet as its own process (testkit/simfleet/main.ts): what it writes is what the worker
 * needs (key, known_hosts, fleet-file host entries), its faults apply, its stats count connections.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { SessionPool } from '../../activities/sessions';
import type { HostSpec } from '../../src/domain/deployment';
import { readGeneration, switchTo } from '../../src/hosts';
import { waitFor } from '../support/temporal';

test('when the simulated fleet runs as a process, then its files let the product reach every host and its faults and stats apply', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-simfleet-'));
  const child = spawn(process.execPath, [require.resolve('tsx/cli'), resolve(__dirname, '../../testkit/simfleet/main.ts'), '--hosts', '30', '--home-manager-every', '10', '--fail', 'h7=units', '--out', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    await waitFor('the fleet process to be ready', () => (out.includes('ready 30') ? true : err ? Promise.reject(new Error(err)) : undefined), 60_000, 50);
    const hosts = JSON.parse(readFileSync(join(dir, 'hosts.json'), 'utf8')) as HostSpec[];
    expect(hosts).toHaveLength(30);
    expect(hosts.filter((h) => h.kind === 'home-manager').map((h) => h.name)).toEqual(['h10', 'h20', 'h30']);
    const pool = new SessionPool({ privateKey: readFileSync(join(dir, 'client_ed25519')), knownHosts: readFileSync(join(dir, 'known_hosts'), 'utf8'), maxConnections: 5, idleMs: 0, keepaliveIntervalMs: 0 });
    try {
      for (const h of hosts) expect((await pool.use(h, (s) => readGeneration(s, h.kind))).number).toBe(42);
      const ref = `git+http://127.0.0.1:1/fleet.git?ref=main&rev=${'b'.repeat(40)}`;
      const h7 = hosts.find((h) => h.name === 'h7') as HostSpec;
      expect(await pool.use(h7, (s) => switchTo(s, { name: 'h7', kind: 'nixos' }, { flakeRef: ref }))).toMatchObject({ outcome: 'failed', exitCode: 4, profileMoved: true });
      const h8 = hosts.find((h) => h.name === 'h8') as HostSpec;
      expect(await pool.use(h8, (s) => switchTo(s, { name: 'h8', kind: 'nixos' }, { flakeRef: ref }))).toMatchObject({ outcome: 'switched', after: { number: 43 } });
    } finally {
      await pool.closeAll();
    }
    await waitFor('stats to count the 32 connections', () => {
      const st = JSON.parse(readFileSync(join(dir, 'stats.json'), 'utf8')) as { accepted: number; peakOpen: number };
      return st.accepted === 32 ? st : undefined;
    }, 10_000, 100).then((st) => expect(st.peakOpen).toBeLessThanOrEqual(5));
  } finally {
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    rmSync(dir, { recursive: true, force: true });
  }
});
