/**
 * The simulated host's newer commands, driven by the product's own builders (src/hosts): the GC sweep
 * (ages by the simulated host clock), the Home Manager activation lock (busy: exit 75, stopped by
 * `fuser -k` on it), and the closure diff reads. tests/fleet/gc-sweep.test.ts is the same sweep on
 * the real sshd stand-in.
 */
import {
  gcRootDir,
  gcRootName,
  HostSession,
  hmActivationLock,
  pinStorePath,
  readGeneration,
  stopActivationCommand,
  sweepCommand,
  sweepStaleRoots,
  switchMarkerName,
  switchTo,
  writeSwitchMarker,
} from '../../src/hosts';
import { diffClosures } from '../../src/hosts/closure-diff';
import { bootInto, readBootCommand, readBootState, requestReboot } from '../../src/hosts/reboot';
import { needsReboot } from '../../src/domain/reboot';
import { gcSweepAgeSeconds } from '../../src/domain/gc-roots';
import { startSimFleet, type SimEndpoint, type SimFleet } from '../../testkit/simfleet';
import { waitFor } from '../../testkit/fleet/wait';

const REF = (c: string): string => `git+http://127.0.0.1:1/git/acme/fleet.git?ref=main&rev=${c.repeat(40)}`;

function connect(fleet: SimFleet, e: SimEndpoint): Promise<HostSession> {
  return HostSession.connect({ address: e.address, port: e.port, user: 'root', privateKey: fleet.clientPrivateKey, knownHosts: fleet.knownHosts, label: e.name, readyTimeoutMs: 30_000, keepaliveIntervalMs: 0 });
}

let fleet: SimFleet;
beforeAll(async () => {
  fleet = await startSimFleet([
    { name: 'n1', kind: 'nixos' },
    { name: 'h1', kind: 'home-manager' },
  ]);
});
afterAll(async () => {
  await fleet?.stop();
});

test.each(['n1', 'h1'])('%s: the sweep removes roots and markers of other deployments older than the bound by the host clock, keeps recent and current ones, and prints what it removed', async (name) => {
  const e = fleet.host(name);
  const s = await connect(fleet, e);
  try {
    const bound = gcSweepAgeSeconds();
    const g = await readGeneration(s, e.kind);
    const dir = gcRootDir(e.kind, g.profile);
    await pinStorePath(s, e.kind, g.profile, gcRootName('deploy-gone.fleet.pr1', 'recorded'), g.storePath);
    await writeSwitchMarker(s, e.kind, g.profile, switchMarkerName('deploy-gone.fleet.pr1', 'runold'));
    await pinStorePath(s, e.kind, g.profile, gcRootName('deploy-other.fleet.pr7', 'target'), g.storePath);
    await pinStorePath(s, e.kind, g.profile, gcRootName('deploy-now.fleet.pr9', 'recorded'), g.storePath);
    await writeSwitchMarker(s, e.kind, g.profile, switchMarkerName('deploy-now.fleet.pr9', 'runearlier'));
    const gone = [`${dir}/deploy-gone.fleet.pr1-recorded`, `${dir}/switches/deploy-gone.fleet.pr1-runold`];
    for (const p of [...gone, `${dir}/switches/deploy-now.fleet.pr9-runearlier`]) e.host.ageEntry(p, bound + 3600);
    e.host.ageEntry(`${dir}/deploy-other.fleet.pr7-target`, bound - 3600);

    expect((await sweepStaleRoots(s, e.kind, g.profile, 'deploy-now.fleet.pr9', bound)).sort()).toEqual(gone.sort());
    expect([...e.host.gcRoots().keys()].sort()).toEqual([`${dir}/deploy-now.fleet.pr9-recorded`, `${dir}/deploy-other.fleet.pr7-target`]);
    expect(e.host.switchMarkers()).toEqual([`${dir}/switches/deploy-now.fleet.pr9-runearlier`]);
    // Twice: nothing more to remove.
    expect(await sweepStaleRoots(s, e.kind, g.profile, 'deploy-now.fleet.pr9', bound)).toEqual([]);
    // The host clock moves on: the other deployment's root is now past the bound too.
    e.host.advanceClock(2 * 3600 * 1000);
    expect(await sweepStaleRoots(s, e.kind, g.profile, 'deploy-now.fleet.pr9', bound)).toEqual([`${dir}/deploy-other.fleet.pr7-target`]);
    expect([...e.host.gcRoots().keys()]).toEqual([`${dir}/deploy-now.fleet.pr9-recorded`]);

    // What the allowlist refuses: under an hour, another directory, a traversal.
    const good = sweepCommand(e.kind, g.profile, 'deploy-now.fleet.pr9', bound);
    for (const bad of [good.replace(/-mmin \+\d+/, '-mmin +59'), good.replace(dir, '/nix/var/nix/gcroots'), good.replace("! -name 'deploy-now.fleet.pr9-*'", "! -name '..-*'"), good.replace('-maxdepth 2', '-maxdepth 3')]) {
      const r = await s.exec(bad);
      expect(r.code).toBe(126);
    }
    const verbs = e.host.commandLog().map((l) => l.verb);
    expect(verbs.filter((v) => v === 'gc-sweep')).toHaveLength(3);
    expect(verbs.filter((v) => v === 'deny')).toHaveLength(4);
  } finally {
    await s.close();
  }
});

test('when a Home Manager activation holds its profile lock, then a second one exits 75, the NixOS lock is not it, and fuser -k on it stops the activation', async () => {
  const e = fleet.host('h1');
  const s1 = await connect(fleet, e);
  const s2 = await connect(fleet, e);
  try {
    const g = await readGeneration(s2, 'home-manager');
    const lock = hmActivationLock(g.profile);
    e.host.latency = { activationMs: 600_000 };
    const started = e.host.activations().length;
    const first = switchTo(s1, { name: 'h1', kind: 'home-manager', attr: 'h1' }, { flakeRef: REF('b') }).then(
      (r) => ({ ok: true as const, r }),
      (err: unknown) => ({ ok: false as const, err }),
    );
    const running = await waitFor('the activation to start', () => e.host.activations()[started]);
    const again = await s2.exec(`{ flock -n 9 || exit 75; exec '${running.storePath}'/activate; } 9>'${lock}'`);
    expect(again.code).toBe(75);
    const busy = await s2.exec(`{ flock -n 9 || exit 75; exec home-manager switch --flake '${REF('b')}#h1'; } 9>'${lock}'`);
    expect(busy.code).toBe(75);
    expect((await s2.exec(stopActivationCommand())).code).toBe(1);
    expect((await s2.exec(stopActivationCommand(lock))).code).toBe(0);
    const outcome = await first;
    // Killed mid-activation: the deployer sees no result for it (a lost command), never a success.
    expect(outcome.ok && outcome.r.outcome === 'switched').toBe(false);
    expect((await s2.exec(stopActivationCommand(lock))).code).toBe(1);
    // The lock is free again: the same activation now runs (quickly).
    e.host.latency = {};
    expect((await s2.exec(`{ flock -n 9 || exit 75; exec '${running.storePath}'/activate; } 9>'${lock}'`)).code).toBe(0);
    expect((await s2.exec(`{ flock -n 9 || exit 75; exec '${running.storePath}'/activate; } 9>'/home/../root/.local/state/nix/profiles/nixfleet-activation.lock'`)).code).toBe(126);
    // The unlocked forms are no longer admitted.
    expect((await s2.exec(`'${running.storePath}'/activate`)).code).toBe(126);
    expect((await s2.exec(`home-manager switch --flake '${REF('b')}#h1'`)).code).toBe(126);
  } finally {
    e.host.latency = {};
    await s1.close().catch(() => undefined);
    await s2.close();
  }
});

test('when a NixOS boot-default write or activation is asked for, then only the locked forms run, and a held lock gives exit 75', async () => {
  const e = fleet.host('n1');
  const s = await connect(fleet, e);
  const s2 = await connect(fleet, e);
  try {
    const g = await readGeneration(s, 'nixos');
    expect((await s.exec(`'${g.storePath}'/bin/switch-to-configuration boot`)).code).toBe(126);
    const boot = await s.exec(`{ flock -n 9 || exit 75; exec '${g.storePath}'/bin/switch-to-configuration boot; } 9>/run/nixfleet-activation.lock`);
    expect(boot.code).toBe(0);
    expect(e.host.commandLog().at(-1)?.verb).toBe('switch-to-configuration-boot');
    // An activation holds the host's lock: a boot-default write waits its turn (exit 75), fuser stops it.
    e.host.latency = { activationMs: 600_000 };
    const started = e.host.activations().length;
    const running = s2.exec(`{ flock -n 9 || exit 75; exec '${g.storePath}'/bin/switch-to-configuration switch; } 9>/run/nixfleet-activation.lock`).catch((err: unknown) => err);
    await waitFor('the activation to start', () => e.host.activations()[started]);
    expect((await s.exec(`{ flock -n 9 || exit 75; exec '${g.storePath}'/bin/switch-to-configuration boot; } 9>/run/nixfleet-activation.lock`)).code).toBe(75);
    expect((await s.exec(stopActivationCommand())).code).toBe(0);
    await running;
    expect((await s.exec(stopActivationCommand())).code).toBe(1);
  } finally {
    e.host.latency = {};
    await s.close();
    await s2.close().catch(() => undefined);
  }
});

test('when the product asks what a switch will change, then the simulated host answers diff-closures and path-info as Nix prints them, deterministically', async () => {
  const e = fleet.host('n1');
  const s = await connect(fleet, e);
  try {
    const before = await readGeneration(s, 'nixos');
    const r = await switchTo(s, { name: 'n1', kind: 'nixos', attr: 'n1' }, { flakeRef: REF('c') });
    expect(r.outcome).toBe('switched');
    const to = r.after.storePath;
    const d = await diffClosures(s, before.storePath, to);
    expect(d.changes.length).toBeGreaterThan(0);
    expect(d.changes.every((c) => ['added', 'removed', 'upgraded'].includes(c.kind))).toBe(true);
    expect(d.fromClosureBytes).toBeGreaterThan(0);
    expect(d.toClosureBytes).toBeGreaterThan(0);
    expect(await diffClosures(s, before.storePath, to)).toEqual(d);
    // The same path: no change.
    expect((await diffClosures(s, to, to)).changes).toEqual([]);
    expect(e.host.commandLog().some((l) => l.verb === 'nix-diff-closures')).toBe(true);
    expect(e.host.commandLog().some((l) => l.verb === 'nix-closure-size')).toBe(true);
    // A path the host does not have: diff-closures fails, as Nix does.
    const missing = `/nix/store/${'0'.repeat(32)}-missing`;
    await expect(diffClosures(s, missing, to)).rejects.toThrow();
  } finally {
    await s.close();
  }
});

test('when the product runs a confirmed activation, then the simulated host admits it byte for byte (the lock inside the unit), arms the timer, and a second one while the timer is loaded activates but exits 97 as systemd-run refuses the name', async () => {
  const e = fleet.host('n1');
  const s = await connect(fleet, e);
  try {
    const from = e.host.commandLog().length;
    const before = await readGeneration(s, 'nixos');
    const rollbackTo = { number: before.number, storePath: before.storePath };
    const unit = 'nixfleet-rollback-deploy-x.fleet.pr3';
    const r = await switchTo(s, { name: 'n1', kind: 'nixos', attr: 'n1' }, { flakeRef: REF('d'), confirm: { unit, timeoutSeconds: 3600, rollbackTo } });
    expect(r.outcome).toBe('switched');
    const log = e.host.commandLog().slice(from);
    expect(log.some((l) => l.verb === 'confirmed-activation' && l.exitCode === 0)).toBe(true);
    expect(log.some((l) => l.verb === 'deny')).toBe(false);
    // The activate unit is gone (--collect); the timer is loaded.
    expect((await s.exec(`systemctl is-active '${unit}-activate.service'`)).code).toBe(3);
    const cmd = log.find((l) => l.verb === 'confirmed-activation')?.command as string;
    const started = e.host.activations().length;
    const again = await s.exec(cmd);
    expect(again.code).toBe(97);
    expect(e.host.activations().length).toBe(started + 1);
    expect((await s.exec(`systemctl stop '${unit}.timer'`)).code).toBe(0);
  } finally {
    await s.close();
  }
});

test('GC root names: two long deployment ids with the same first 140 characters get different names, each within the name limit', () => {
  const stem = `deploy-${'o'.repeat(39)}-${'r'.repeat(100)}`;
  const a = gcRootName(`${stem}-pr1`, 'recorded');
  const b = gcRootName(`${stem}-pr2`, 'recorded');
  expect(a).not.toBe(b);
  for (const n of [a, b]) expect(n).toMatch(/^[A-Za-z0-9][A-Za-z0-9._-]{0,159}$/);
  // A short id keeps its readable name.
  expect(gcRootName('deploy-acme-fleet-pr7', 'target')).toBe('deploy-acme-fleet-pr7-target');
});

test('when the product reads the boot state (whether a switch needs a reboot), then the simulated host answers it as the stand-in does: the booted and active systems and their kernel parts; an altered read is refused', async () => {
  const n1 = fleet.host('n1');
  const s = await connect(fleet, n1);
  try {
    const gen = await readGeneration(s, 'nixos');
    const st = await readBootState(s, gen.storePath);
    // Booted on the generation it was created on (seed 42; earlier cases switched it since, without a reboot).
    expect(st.bootedSystem).toMatch(/-nixos-system-n1-seed-42$/);
    expect(st.currentSystem).toBe(n1.host.currentSystem());
    expect(st.booted?.kernel).toMatch(/^\/nix\/store\/[0-9a-z]{32}-linux$/);
    // Its updates never change the kernel: no reboot needed, for the active system or a store path it lacks.
    expect(needsReboot(st.booted, st.target)).toEqual({ needed: false });
    const again = await readBootState(s, gen.storePath);
    expect(again.bootId).toBe(st.bootId);
    const missing = await readBootState(s, `/nix/store/${'a'.repeat(32)}-nixos-system-n1-none`);
    expect(missing.target).toEqual({ kernel: null, initrd: null, kernelModules: null });
    const altered = await s.exec(readBootCommand(gen.storePath).replace('kernel-modules', 'kernel-modules etc'));
    expect(altered.code).toBe(126);
    expect(n1.host.commandLog().filter((l) => l.verb === 'read-boot')).toHaveLength(3);
  } finally {
    await s.close();
  }
});

test('when the product boots a generation by a reboot, then the simulated host goes down (its session cut, connections refused) for its rebootDownMs, boots its boot default (a new boot id, booted and active both it), and a retried reboot with the old boot id does not reboot it again', async () => {
  const n1 = fleet.host('n1');
  n1.host.rebootDownMs = 400;
  let s = await connect(fleet, n1);
  try {
    const seed41 = n1.host.generations().find((g) => g.number === 41)?.storePath as string;
    const st = await readBootState(s, seed41);
    const after = await bootInto(s, seed41);
    expect(after.storePath).toBe(seed41);
    expect(n1.host.bootDefault()?.storePath).toBe(seed41);
    // Nothing is activated before the reboot.
    expect(n1.host.currentSystem()).not.toBe(seed41);
    expect(await requestReboot(s, st.bootId)).toBe('requested');
    await waitFor('the host to go down', () => n1.host.reboots === 1 && !n1.host.running, { timeoutMs: 5_000, intervalMs: 5 });
    // Down: the session is cut and nothing listens.
    await expect(s.exec('true')).rejects.toThrow();
    await expect(connect(fleet, n1)).rejects.toThrow(/ECONNREFUSED/);
    await waitFor('the host to be back', () => n1.host.running, { timeoutMs: 5_000, intervalMs: 5 });
    s = await connect(fleet, n1);
    const back = await readBootState(s, seed41);
    expect(back.bootId).not.toBe(st.bootId);
    expect(back.bootedSystem).toBe(seed41);
    expect(back.currentSystem).toBe(seed41);
    expect(await requestReboot(s, st.bootId)).toBe('already-rebooted');
    expect(n1.host.reboots).toBe(1);
    expect(n1.host.running).toBe(true);
    expect(n1.host.commandLog().filter((l) => l.verb === 'reboot')).toHaveLength(2);
  } finally {
    await s.close();
  }
});

test('when a simulated host\'s next boot is set to fail (failNextBoot, as the stand-in\'s), then wrong-generation boots what booted before instead of the boot default, and never-comes-back stays unreachable until restart()', async () => {
  const n1 = fleet.host('n1');
  n1.host.rebootDownMs = 200;
  const booted = n1.host.bootedSystem() as string;
  const seed40 = n1.host.generations().find((g) => g.number === 40)?.storePath as string;
  let s = await connect(fleet, n1);
  try {
    // wrong-generation: the boot default is seed 40, the host boots what booted before.
    await bootInto(s, seed40);
    n1.host.failNextBoot('wrong-generation');
    expect(await requestReboot(s, (await readBootState(s, seed40)).bootId)).toBe('requested');
    await waitFor('the first reboot', () => n1.host.reboots === 2, { timeoutMs: 5_000, intervalMs: 5 });
    await waitFor('the host to be back', () => n1.host.running, { timeoutMs: 5_000, intervalMs: 5 });
    s = await connect(fleet, n1);
    const wrong = await readBootState(s, seed40);
    expect(wrong.bootedSystem).toBe(booted);
    expect(wrong.currentSystem).toBe(booted);
    expect(n1.host.bootDefault()?.storePath).toBe(seed40);

    // never-comes-back: down for good, until the test brings it back; it then boots its boot default.
    n1.host.failNextBoot('never-comes-back');
    expect(await requestReboot(s, wrong.bootId)).toBe('requested');
    await waitFor('the second reboot', () => n1.host.reboots === 3 && !n1.host.running, { timeoutMs: 5_000, intervalMs: 5 });
    // The reboot has run its course (past its down time): the host stays down.
    await n1.host.rebootSettled();
    expect(n1.host.running).toBe(false);
    await expect(connect(fleet, n1)).rejects.toThrow(/ECONNREFUSED/);
    await n1.host.restart();
    s = await connect(fleet, n1);
    const back = await readBootState(s, seed40);
    expect(back.bootedSystem).toBe(seed40);
    expect(back.bootId).not.toBe(wrong.bootId);
    expect(n1.host.reboots).toBe(3);
  } finally {
    await s.close();
  }
});
