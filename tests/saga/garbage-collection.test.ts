/**
 * The way back survives garbage collection: `nix-collect-garbage -d` runs on hosts between their
 * switch and their rollback, automatic and manual (within the manual window), and every rollback
 * still lands on the recorded store path, booted by default. The GC roots that pin it are removed
 * when the deployment closes. Real Temporal, stand-in hosts, the real activities.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { generationTrail } from '../../src/domain/presentation';
import { rollbackTo } from '../../src/hosts';
import type { StandinHost } from '../../testkit/fleet';
import type { World } from '../../testkit/world';
import { connect } from '../fleet/helpers';
import { rollbackSignal } from '../../workflows/messages';
import { startDeployment, waitPhase, sagaHarness } from '../support/saga';
import { waitFor } from '../support/temporal';

const stack = sagaHarness();

/** The deployer's GC roots on a host (NixOS: gcroots/nixfleet; Home Manager: beside its profile). */
const roots = (h: StandinHost): string[] => {
  const dir = h.kind === 'nixos' ? path.join(h.dir, 'gcroots', 'nixfleet') : path.join(h.dir, 'home', '.local', 'state', 'nix', 'profiles', 'nixfleet-gcroots');
  if (!fs.existsSync(dir)) return [];
  // switches/ holds the switch markers (one per deployment run), which go at close as the roots do.
  return fs.readdirSync(dir).flatMap((e) => (e === 'switches' ? fs.readdirSync(path.join(dir, e)).map((m) => `switches/${m}`) : [e]));
};
/**
 * NixOS hosts run generation 41 but booted 42: /run/booted-system is a GC root of its own on NixOS, so
 * the generation a deployment records must be one the host runs but did not boot, which only the
 * deployer's pin keeps through a collection (with the booted one recorded, the test holds without it).
 */
async function runUnbooted(w: World): Promise<void> {
  for (const h of w.fleet.hosts.filter((x) => x.kind === 'nixos')) {
    const g41 = h.generations().find((g) => g.number === 41);
    if (!g41) throw new Error(`${h.name} has no generation 41`);
    const s = await connect(w.fleet, h);
    try {
      expect((await rollbackTo(s, { name: h.name, kind: h.kind, attr: h.name }, { number: 41, storePath: g41.storePath })).outcome).toBe('rolled-back');
    } finally {
      await s.close();
    }
    expect(h.currentSystem()).toBe(g41.storePath);
    expect(h.bootedSystem()).not.toBe(g41.storePath);
  }
}
const onRecorded = (h: StandinHost, storePath: string): boolean =>
  h.profileGeneration().storePath === storePath && h.currentSystem() === storePath && (h.kind !== 'nixos' || h.bootDefault()?.storePath === storePath);

test('automatic: garbage collection on every switched host before the compensation; all land on their recorded store paths; roots go at close', async () => {
  const w = await stack.world({
    hosts: [
      { name: 'k1', kind: 'nixos' },
      { name: 'k2', kind: 'home-manager' },
      { name: 'k3', kind: 'nixos' },
    ],
  });
  await runUnbooted(w);
  const before = Object.fromEntries(w.fleet.hosts.map((h) => [h.name, h.profileGeneration()]));
  const pr = await w.openLockUpdate('v2');
  const k3 = w.fleet.host('k3');
  k3.failActivation('units', { onlyVersion: 'v2' });
  // k3's activation waits until the collector has run on k1 and k2 (switched) and on k3 itself.
  k3.hangActivation(true);
  await stack.withWorker(w, 'gc-automatic', async (taskQueue) => {
    const handle = await startDeployment(stack.t, w, taskQueue, { pr: pr.number, manualWindowSeconds: 30 });
    await waitFor('k3 activation to hang', () => (k3.commandLog().some((e) => e.tool === 'hang') ? true : undefined));
    const deleted: Record<string, string[]> = {};
    try {
      for (const h of w.fleet.hosts) deleted[h.name] = await h.collectGarbage();
    } finally {
      k3.hangActivation(false);
    }
    for (const h of w.fleet.hosts) {
      expect(h.generations()).toHaveLength(1);
      expect(deleted[h.name]).not.toContain(before[h.name]?.storePath);
      expect(roots(h).length).toBeGreaterThan(0);
    }
    const s = await waitPhase(handle, ['awaiting-operator']);
    expect(s.hosts.map((h) => `${h.name}:${h.state}`)).toEqual(['k1:rolled-back', 'k2:rolled-back', 'k3:rolled-back']);
    for (const h of w.fleet.hosts) expect(onRecorded(h, before[h.name]?.storePath as string)).toBe(true);
    // The recorded links were collected: each rollback made a new generation of the recorded store
    // path, and the status says where it landed (the trail reads 42 → 43 → 44, not 42 → 43 → 42).
    for (const h of w.fleet.hosts) {
      const st = s.hosts.find((x) => x.name === h.name);
      const landed = h.profileGeneration();
      expect(landed.number).not.toBe(before[h.name]?.number);
      expect(st?.now).toEqual(landed);
      expect(generationTrail(st!)).toBe(`${before[h.name]?.number} → ${st?.after?.number} → ${landed.number}`);
    }
    // Still open for the operator: the roots stay. Closed: they go.
    expect(roots(w.fleet.host('k1')).length).toBeGreaterThan(0);
    await handle.signal(rollbackSignal, { action: 'dismiss', requestedBy: 'alice' });
    await handle.result();
    for (const h of w.fleet.hosts) expect(roots(h)).toEqual([]);
  });
});

test('manual: garbage collection within the manual window; the operator\'s rollback lands on the recorded store path', async () => {
  const w = await stack.world({
    hosts: [
      { name: 'q1', kind: 'nixos' },
      { name: 'q2', kind: 'nixos' },
    ],
  });
  await runUnbooted(w);
  const before = Object.fromEntries(w.fleet.hosts.map((h) => [h.name, h.profileGeneration()]));
  const pr = await w.openLockUpdate('v2');
  w.fleet.host('q2').failActivation('units', { onlyVersion: 'v2' });
  await stack.withWorker(w, 'gc-manual', async (taskQueue) => {
    const handle = await startDeployment(stack.t, w, taskQueue, { pr: pr.number, onFailure: { revert: 'off', rollbackHosts: false } });
    const s = await waitPhase(handle, ['awaiting-operator']);
    expect(s.hosts.map((h) => h.state)).toEqual(['switched', 'failed']);
    for (const h of w.fleet.hosts) {
      const deleted = await h.collectGarbage();
      expect(h.generations().map((g) => g.number)).toEqual([43]);
      expect(deleted).not.toContain(before[h.name]?.storePath);
    }
    await handle.signal(rollbackSignal, { action: 'revert-and-rollback', requestedBy: 'carol' });
    const final = await handle.result();
    expect(final.hosts.map((h) => h.state)).toEqual(['rolled-back', 'rolled-back']);
    // The operator's rollback says where it landed too: a new generation (the recorded links were collected).
    for (const h of w.fleet.hosts) expect(final.hosts.find((x) => x.name === h.name)?.now).toEqual(h.profileGeneration());
    expect(final.hosts.map((h) => h.now?.number === h.before?.number)).toEqual([false, false]);
    for (const h of w.fleet.hosts) expect(onRecorded(h, before[h.name]?.storePath as string)).toBe(true);
    for (const h of w.fleet.hosts) expect(roots(h)).toEqual([]);
  });
});
