/**
 * The simulated fleet on its own: thousands of endpoints in one process, each its own host key and
 * generations, answering the product's own commands (src/hosts) and refusing anything else as the
 * allowlist does.
 */
import { HostSession, readGeneration, switchTo, rollbackTo, listGenerations } from '../../src/hosts';
import { SessionPool } from '../../activities/sessions';
import type { HostSpec } from '../../src/domain/deployment';
import { startSimFleet, type SimEndpoint, type SimFleet } from '../../testkit/simfleet';

function connect(fleet: SimFleet, e: SimEndpoint, knownHosts = fleet.knownHosts): Promise<HostSession> {
  return HostSession.connect({ address: e.address, port: e.port, user: 'root', privateKey: fleet.clientPrivateKey, knownHosts, label: e.name, readyTimeoutMs: 60_000, keepaliveIntervalMs: 0 });
}

async function inBatches<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

test('when 2,000 simulated endpoints run, then each answers the read command with its own generation, behind its own pinned host key', async () => {
  const specs = Array.from({ length: 2000 }, (_, i) => ({ name: `h${i}`, kind: (i % 10 === 9 ? 'home-manager' : 'nixos') as 'nixos' | 'home-manager', generations: [1, 2, 3 + (i % 7)] }));
  const fleet = await startSimFleet(specs);
  // Through the worker's own pool (one known_hosts file pinning all 2,000 keys, at most 50 open).
  const pool = new SessionPool({ privateKey: fleet.clientPrivateKey, knownHosts: fleet.knownHosts, maxConnections: 50, idleMs: 0, keepaliveIntervalMs: 0, readyTimeoutMs: 60_000 });
  try {
    expect(new Set(fleet.hosts.map((h) => `${h.address}:${h.port}`)).size).toBe(2000);
    const seen = new Map<string, { number: number; storePath: string }>();
    await inBatches([...fleet.hosts], 50, async (e) => {
      const host = { name: e.name, address: e.address, port: e.port, user: e.user, kind: e.kind } as HostSpec;
      const g = await pool.use(host, (s) => readGeneration(s, e.kind));
      seen.set(e.name, { number: g.number, storePath: g.storePath });
      expect(g.currentSystem).toBe(g.storePath);
    });
    expect(seen.size).toBe(2000);
    for (const e of fleet.hosts) expect(seen.get(e.name)).toEqual(e.host.profileGeneration());
    expect(new Set([...seen.values()].map((g) => g.storePath)).size).toBe(2000);
    const i = 1234;
    expect(seen.get(`h${i}`)?.number).toBe(3 + (i % 7));
    expect(fleet.stats().commands).toBe(2000);
    expect(fleet.stats().accepted).toBe(2000);
    expect(fleet.stats().peakOpen).toBeLessThanOrEqual(50);
  } finally {
    await pool.closeAll();
    await fleet.stop();
  }
}, 600_000);

test('when a command is not on the allowlist, then the endpoint refuses it with exit 126, as the allowlist does', async () => {
  const fleet = await startSimFleet([{ name: 'a', kind: 'nixos' }]);
  const e = fleet.host('a');
  const s = await connect(fleet, e);
  try {
    for (const cmd of ['id', 'nix-env -p /nix/var/nix/profiles/system --set /nix/store/x', "nix-env -p '/nix/var/nix/profiles/system' --rollback", "readlink '/etc/passwd'", "systemctl --failed --no-legend --plain --no-pager; id"]) {
      const r = await s.exec(cmd);
      expect(r.code).toBe(126);
      expect(r.stderr).toContain('nixfleet-allowlist: refused:');
    }
    expect(e.host.commandLog().every((l) => l.verb === 'deny')).toBe(true);
    expect(e.host.profileGeneration().number).toBe(42);
  } finally {
    await s.close();
    await fleet.stop();
  }
});

test('when the product switches and rolls back a simulated host, then generations move as on a real host', async () => {
  const fleet = await startSimFleet([{ name: 'a', kind: 'nixos' }, { name: 'b', kind: 'nixos' }]);
  const ref = `git+http://127.0.0.1:1/git/acme/fleet.git?ref=main&rev=${'a'.repeat(40)}`;
  try {
    const a = fleet.host('a');
    const b = fleet.host('b');
    b.host.failActivation('units');
    const sa = await connect(fleet, a);
    const sb = await connect(fleet, b);
    const before = a.host.profileGeneration();
    const ra = await switchTo(sa, { name: 'a', kind: 'nixos' }, { flakeRef: ref });
    expect(ra).toMatchObject({ outcome: 'switched', after: { number: 43 } });
    // Again: already on target, nothing moves.
    expect(await switchTo(sa, { name: 'a', kind: 'nixos' }, { flakeRef: ref })).toMatchObject({ outcome: 'already-on-target' });
    const rb = await switchTo(sb, { name: 'b', kind: 'nixos' }, { flakeRef: ref });
    expect(rb).toMatchObject({ outcome: 'failed', phase: 'activation', failedUnits: true, exitCode: 4, profileMoved: true });
    expect(b.host.failedUnits()).toEqual(['nixfleet-standin.service']);
    expect(await rollbackTo(sa, { name: 'a', kind: 'nixos' }, before)).toMatchObject({ outcome: 'rolled-back' });
    expect(await rollbackTo(sa, { name: 'a', kind: 'nixos' }, before)).toMatchObject({ outcome: 'already-at-recorded' });
    expect(a.host.profileGeneration()).toEqual(before);
    expect(a.host.currentSystem()).toBe(before.storePath);
    expect(a.host.bootDefault()).toEqual(before);
    expect((await listGenerations(sa, '/nix/var/nix/profiles/system')).map((g) => g.number)).toEqual([40, 41, 42, 43]);
    // The build of an attribute the flake does not have fails, as `nix build` does.
    const other = await switchTo(sa, { name: 'zz', kind: 'nixos' }, { flakeRef: ref });
    expect(other).toMatchObject({ outcome: 'failed', phase: 'build' });
    await sa.close();
    await sb.close();
  } finally {
    await fleet.stop();
  }
});
