/**
 * The way back on hosts as strict as real NixOS (see "Real hosts" in the domain notes): transient
 * units have the manager's environment, elapsed timers stay loaded, the boot default follows the
 * profile, and garbage collection removes old generations. Real sshd, real Nix, the stand-in fleet.
 */
import * as fs from 'node:fs';
import { createFleetFlakeRepo, startFleet, waitFor } from '../../testkit/fleet';
import type { FleetFlakeRepo, StandinFleet, StandinHost } from '../../testkit/fleet';
import { confirmSelfRollback, readGeneration, rollbackTo, switchTo } from '../../src/hosts';
import type { HostSession, HostTarget } from '../../src/hosts';
import { connect } from './helpers';

let fleet: StandinFleet;
let repo: FleetFlakeRepo;
let flakeRef: string;
const sessions: HostSession[] = [];

const NIXOS = ['c1', 'c2', 'c3', 'c4', 'b1', 'r1', 'r2'];
const HM = ['g1'];

async function session(name: string): Promise<HostSession> {
  const s = await connect(fleet, fleet.host(name));
  sessions.push(s);
  return s;
}
const target = (h: StandinHost): HostTarget => ({ name: h.name, kind: h.kind, attr: h.name });
const generation = (h: StandinHost, n: number) => ({ number: n, storePath: h.generations().find((g) => g.number === n)?.storePath ?? '' });
const onGeneration = (h: StandinHost, g: { storePath: string }) => h.profileGeneration().storePath === g.storePath && h.currentSystem() === g.storePath;

beforeAll(async () => {
  for (const bin of ['/usr/sbin/sshd', '/usr/bin/nix']) expect(fs.existsSync(bin)).toBe(true);
  fleet = await startFleet([...NIXOS.map((name) => ({ name, kind: 'nixos' as const })), ...HM.map((name) => ({ name, kind: 'home-manager' as const }))]);
  repo = await createFleetFlakeRepo(fleet.baseDir, [...NIXOS, ...HM], { version: 'v1' });
  await repo.updateLock({ version: 'v2' });
  flakeRef = repo.flakeRef(await repo.head());
});

afterAll(async () => {
  for (const s of sessions) await s.close();
  await fleet?.stop();
});

describe('connectivity confirmation', () => {
  test('an unconfirmed host rolls itself back from inside its timer unit (manager environment), boot default included', async () => {
    const c1 = fleet.host('c1');
    const s = await session('c1');
    const before = await readGeneration(s, 'nixos');
    const sw = await switchTo(s, target(c1), { flakeRef, confirm: { unit: 'nixfleet-rollback-c1-a', timeoutSeconds: 2, rollbackTo: before } });
    expect(sw.outcome).toBe('switched');
    expect(c1.bootDefault()?.number).toBe(43);
    // Nobody confirms: the host returns to the recorded generation by itself, and boots it.
    await waitFor('c1 back on generation 42', () => onGeneration(c1, before) && c1.profileGeneration().number === 42, { timeoutMs: 30_000 });
    expect(c1.bootDefault()).toEqual({ number: 42, storePath: before.storePath });
  });

  test('confirmation is idempotent: a retry after a lost reply still says confirmed; the host stays switched', async () => {
    const c2 = fleet.host('c2');
    const s = await session('c2');
    const before = await readGeneration(s, 'nixos');
    const sw = await switchTo(s, target(c2), { flakeRef, confirm: { unit: 'nixfleet-rollback-c2-a', timeoutSeconds: 4, rollbackTo: before } });
    expect(sw.outcome).toBe('switched');
    const switched = { number: sw.after.number, storePath: sw.after.storePath };
    const s2 = await session('c2');
    expect(await confirmSelfRollback(s2, 'nixfleet-rollback-c2-a', { before, switched })).toBe('confirmed');
    // The reply was lost; the retry comes: still confirmed (the timer is gone, the host did not move).
    expect(await confirmSelfRollback(s2, 'nixfleet-rollback-c2-a', { before, switched })).toBe('confirmed');
    expect(onGeneration(c2, switched)).toBe(true);
  });

  test('a timer that fired is told from a stopped one by what the host did, though the elapsed timer stays loaded', async () => {
    const c3 = fleet.host('c3');
    const s = await session('c3');
    const before = await readGeneration(s, 'nixos');
    const sw = await switchTo(s, target(c3), { flakeRef, confirm: { unit: 'nixfleet-rollback-c3-a', timeoutSeconds: 1, rollbackTo: before } });
    expect(sw.outcome).toBe('switched');
    const switched = { number: sw.after.number, storePath: sw.after.storePath };
    await waitFor('c3 rolled itself back', () => onGeneration(c3, before), { timeoutMs: 30_000 });
    await waitFor('its rollback service to end', () => c3.commandLog().some((e) => e.tool === 'timer-done'), { timeoutMs: 30_000 });
    expect(await confirmSelfRollback(await session('c3'), 'nixfleet-rollback-c3-a', { before, switched })).toBe('timer-gone');
  });

  test('a new attempt arms its own timer although the elapsed timer of an earlier attempt is still loaded', async () => {
    const c4 = fleet.host('c4');
    const s = await session('c4');
    const before = await readGeneration(s, 'nixos');
    // First attempt: not confirmed, the host rolls itself back; its elapsed timer stays loaded.
    expect((await switchTo(s, target(c4), { flakeRef, confirm: { unit: 'nixfleet-rollback-c4-run1', timeoutSeconds: 1, rollbackTo: before } })).outcome).toBe('switched');
    await waitFor('c4 rolled itself back', () => onGeneration(c4, before) && c4.commandLog().some((e) => e.tool === 'timer-done'), { timeoutMs: 30_000 });
    // A re-run (another unit name, as the activity derives it per run) switches and is confirmed.
    const again = await switchTo(s, target(c4), { flakeRef, confirm: { unit: 'nixfleet-rollback-c4-run2', timeoutSeconds: 5, rollbackTo: before } });
    expect(again.outcome).toBe('switched');
    const switched = { number: again.after.number, storePath: again.after.storePath };
    expect(await confirmSelfRollback(await session('c4'), 'nixfleet-rollback-c4-run2', { before, switched })).toBe('confirmed');
    expect(onGeneration(c4, switched)).toBe(true);
  });
});

describe('the boot default is part of "rolled back"', () => {
  test('a host back on its recorded generation by `test` (boot default still the new one) is not reported rolled back until it boots the recorded one', async () => {
    const b1 = fleet.host('b1');
    const s = await session('b1');
    const recorded = generation(b1, 42);
    expect((await switchTo(s, target(b1), { flakeRef })).outcome).toBe('switched');
    expect(b1.bootDefault()?.number).toBe(43);
    // Someone brings the profile back and activates with `test`: running 42, booting 43.
    expect((await s.exec('nix-env -p /nix/var/nix/profiles/system --switch-generation 42 && /nix/var/nix/profiles/system-42-link/bin/switch-to-configuration test')).code).toBe(0);
    expect(onGeneration(b1, recorded)).toBe(true);
    expect(b1.bootDefault()?.number).toBe(43);
    const r = await rollbackTo(s, target(b1), recorded);
    expect(['rolled-back', 'already-at-recorded']).toContain(r.outcome);
    expect(b1.bootDefault()).toEqual(recorded);
    await b1.restart();
    expect(b1.currentSystem()).toBe(recorded.storePath);
  });
});

test('after a switch the boot default is the new generation, also when a retry finds the host already on it but booting another', async () => {
  const b1 = fleet.host('b1');
  const s = await session('b1');
  const sw = await switchTo(s, target(b1), { flakeRef });
  expect(sw.outcome).toBe('switched');
  const switched = { number: sw.after.number, storePath: sw.after.storePath };
  expect(b1.bootDefault()).toEqual(switched);
  // The boot menu gets another default; the profile and the running system stay on the switched one.
  expect((await s.exec('nix-env -p /nix/var/nix/profiles/system --switch-generation 42 && /nix/var/nix/profiles/system/bin/switch-to-configuration boot')).code).toBe(0);
  expect((await s.exec(`nix-env -p /nix/var/nix/profiles/system --switch-generation ${switched.number}`)).code).toBe(0);
  expect(b1.bootDefault()?.number).toBe(42);
  const again = await switchTo(s, target(b1), { flakeRef });
  expect(again.outcome).toBe('already-on-target');
  expect(b1.bootDefault()).toEqual(switched);
});

describe('the way back survives garbage collection', () => {
  // The host runs generation 41 (booted 42: /run/booted-system is a GC root of its own on NixOS, so the
  // recorded generation is one the host runs but did not boot, which only the pin can keep).
  const runGeneration41 = async (s: HostSession): Promise<void> => {
    expect((await s.exec('nix-env -p /nix/var/nix/profiles/system --switch-generation 41 && /nix/var/nix/profiles/system/bin/switch-to-configuration switch')).code).toBe(0);
  };

  test('NixOS: nix-collect-garbage -d between switch and rollback; the rollback still lands on the recorded store path', async () => {
    const r1 = fleet.host('r1');
    const s = await session('r1');
    await runGeneration41(s);
    const recorded = generation(r1, 41);
    const { pinRecorded } = await import('../../src/hosts');
    await pinRecorded(s, 'nixos', 'dep-r1', recorded);
    expect((await switchTo(s, target(r1), { flakeRef })).outcome).toBe('switched');
    const deleted = await r1.collectGarbage();
    expect(r1.generations().map((g) => g.number)).toEqual([43]);
    expect(deleted).not.toContain(recorded.storePath);
    const r = await rollbackTo(s, target(r1), recorded);
    expect(r.outcome).toBe('rolled-back');
    expect(onGeneration(r1, recorded)).toBe(true);
    expect(r1.bootDefault()?.storePath).toBe(recorded.storePath);
    // Run twice: nothing more happens.
    expect((await rollbackTo(s, target(r1), recorded)).outcome).toBe('already-at-recorded');
  });

  test('without the pin the collector deletes the recorded generation: the rollback refuses, the host is unchanged', async () => {
    const r2 = fleet.host('r2');
    const s = await session('r2');
    await runGeneration41(s);
    const recorded = generation(r2, 41);
    expect((await switchTo(s, target(r2), { flakeRef })).outcome).toBe('switched');
    const deleted = await r2.collectGarbage();
    expect(deleted).toContain(recorded.storePath);
    await expect(rollbackTo(s, target(r2), recorded)).rejects.toThrow(/cannot roll back/);
    expect(r2.profileGeneration().number).toBe(43);
  });

  test('Home Manager: pinned at record time, collected between switch and rollback, rolled back to the recorded store path', async () => {
    const g1 = fleet.host('g1');
    const s = await session('g1');
    const recorded = generation(g1, 42);
    const { pinRecorded } = await import('../../src/hosts');
    await pinRecorded(s, 'home-manager', 'dep-g1', recorded);
    expect((await switchTo(s, target(g1), { flakeRef })).outcome).toBe('switched');
    const deleted = await g1.collectGarbage();
    expect(deleted).not.toContain(recorded.storePath);
    const r = await rollbackTo(s, target(g1), recorded);
    expect(r.outcome).toBe('rolled-back');
    expect(onGeneration(g1, recorded)).toBe(true);
  });
});
