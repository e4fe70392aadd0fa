/**
 * The stand-in fleet itself: real sshd per host, real Nix generations, stand-in tools that follow the
 * real tools' order and exit codes. These tests FAIL (not skip) when sshd, nix or namespaces are missing.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { createFleetFlakeRepo, fleetFlakeLock, startFleet, waitFor } from '../../testkit/fleet';
import type { FleetFlakeRepo, StandinFleet } from '../../testkit/fleet';
import { ConnectionLostError, HostUnreachableError, shellQuote } from '../../src/hosts';
import type { HostSession } from '../../src/hosts';
import { connect, figures, printFigures, processesMentioning } from './helpers';

const execFileP = promisify(execFile);

let fleet: StandinFleet;
let repo: FleetFlakeRepo;
let rev1: string;
const sessions: HostSession[] = [];

async function sessionTo(name: string): Promise<HostSession> {
  const s = await connect(fleet, fleet.host(name));
  sessions.push(s);
  return s;
}

beforeAll(async () => {
  // The prerequisites are part of the test: no skipping when they are absent.
  for (const bin of ['/usr/sbin/sshd', '/usr/bin/nix', '/usr/bin/unshare']) expect(fs.existsSync(bin)).toBe(true);
  const t0 = Date.now();
  fleet = await startFleet([
    { name: 'alpha', kind: 'nixos' },
    { name: 'beta', kind: 'nixos', generations: [8, 9, 10] },
    { name: 'gamma', kind: 'home-manager' },
    { name: 'delta', kind: 'nixos' },
    { name: 'eps', kind: 'nixos' },
    { name: 'zeta', kind: 'nixos' },
    { name: 'eta', kind: 'home-manager' },
  ]);
  figures['fleet of 7 hosts started (seeding included)'] = `${Date.now() - t0} ms`;
  figures['sshd ready per host'] = fleet.hosts.map((h) => `${h.name} ${h.lastStartMs} ms`).join(', ');
  repo = await createFleetFlakeRepo(fleet.baseDir, fleet.hosts.map((h) => h.name), { version: 'v1' });
  rev1 = await repo.head();
});

afterAll(async () => {
  for (const s of sessions) await s.close();
  const base = fleet?.baseDir;
  await fleet?.stop();
  if (base) expect(processesMentioning(base)).toEqual([]);
  printFigures('stand-in fleet figures');
});

test('each host has its own hostname, sshd, profiles, HOME and /run; seeded generations are real', async () => {
  const s = await sessionTo('alpha');
  const r = await s.run('hostname; readlink /nix/var/nix/profiles/system; readlink /run/current-system; echo $HOME; nix-store --verify-path "$(readlink -f /nix/var/nix/profiles/system)" && echo valid');
  const [hostname, link, current, home, valid] = r.stdout.trim().split('\n');
  expect(hostname).toBe('alpha');
  expect(link).toBe('system-42-link');
  const alpha = fleet.host('alpha');
  expect(current).toBe(alpha.profileGeneration().storePath);
  expect(alpha.currentSystem()).toBe(current);
  expect(home).toBe('/root');
  expect(valid).toBe('valid');
  expect(alpha.generations().map((g) => [g.number, g.current])).toEqual([
    [40, false],
    [41, false],
    [42, true],
  ]);
  // Numeric order, not text order (10 after 9).
  expect(fleet.host('beta').generations().map((g) => g.number)).toEqual([8, 9, 10]);
  // nix-env sees the same generations inside the host.
  const list = await s.run('nix-env --list-generations -p /nix/var/nix/profiles/system');
  expect(list.stdout).toMatch(/^\s+42\s+.*\(current\)\s*$/m);
  // The known_hosts text pins each host's own key.
  expect(fleet.knownHosts).toContain(`[${alpha.address}]:${alpha.port} ${alpha.hostPublicKey}`);
});

test('flake.lock with an extra unreachable node is accepted by Nix 2.8 unchanged, and its content drives the closure', async () => {
  const alpha = fleet.host('alpha');
  const env = { ...process.env, NIX_CONF_DIR: path.join(alpha.dir, 'etc', 'nix') };
  const build = async (ref: string) => {
    const t0 = Date.now();
    const { stdout, stderr } = await execFileP('nix', ['build', '--no-link', '--json', `${ref}#nixosConfigurations."alpha".config.system.build.toplevel`], { env });
    return { out: (JSON.parse(stdout) as { outputs: { out: string } }[])[0]?.outputs.out, stderr, ms: Date.now() - t0 };
  };
  // From the work tree (where Nix would rewrite a lock file it did not like).
  const lockBefore = fs.readFileSync(path.join(repo.workDir, 'flake.lock'), 'utf8');
  const local = await build(`git+file://${repo.workDir}`);
  expect(local.stderr).not.toMatch(/updating lock file|Updated input|warning/i);
  expect(fs.readFileSync(path.join(repo.workDir, 'flake.lock'), 'utf8')).toBe(lockBefore);
  const { stdout: status } = await execFileP('git', ['status', '--porcelain'], { cwd: repo.workDir });
  expect(status).toBe('');

  const v1 = await build(repo.flakeRef(rev1));
  expect(v1.out).toBe(local.out);
  expect(v1.out).toMatch(/-nixos-system-alpha-v1$/);
  const rev2 = await repo.updateLock({ version: 'v2' });
  const v2 = await build(repo.flakeRef(rev2));
  figures['nix build of a new toplevel from git+file://…?rev= (fetch + eval + build)'] = `${v2.ms} ms`;
  expect(v2.out).toMatch(/-nixos-system-alpha-v2$/);
  // Same version marker, different lock content: still a different closure.
  const rev2b = await repo.updateLock({ version: 'v2', extraPins: { note: 'x' } });
  const v2b = await build(repo.flakeRef(rev2b));
  expect(v2b.out).not.toBe(v2.out);
  // Restoring flake.lock restores the old store path exactly.
  const rev3 = await repo.commit({ 'flake.lock': fleetFlakeLock({ version: 'v1' }) }, 'revert flake.lock');
  const v3 = await build(repo.flakeRef(rev3));
  expect(v3.out).toBe(v1.out);
  const cached = await build(repo.flakeRef(rev3));
  figures['nix build, already built'] = `${cached.ms} ms`;
});

test('nixos-rebuild switch: build, profile moves, then activation; exit codes as the real tool', async () => {
  const delta = fleet.host('delta');
  const s = await sessionTo('delta');
  const ref = `${repo.flakeRef(rev1)}#delta`;
  const before = delta.profileGeneration();

  const t0 = Date.now();
  const ok = await s.exec(`nixos-rebuild switch --flake ${shellQuote(ref)}`);
  figures['nixos-rebuild switch over SSH (first build of the host from git)'] = `${Date.now() - t0} ms`;
  expect(ok.code).toBe(0);
  const g43 = delta.profileGeneration();
  expect(g43.number).toBe(43);
  expect(g43.storePath).toMatch(/-nixos-system-delta-v1$/);
  expect(delta.currentSystem()).toBe(g43.storePath);
  const log = delta.commandLog().map((e) => e.tool);
  // Order: nixos-rebuild, nix build, nix-env --set, switch-to-configuration.
  expect(log.filter((t) => ['nixos-rebuild', 'nix', 'nix-env', 'switch-to-configuration'].includes(t))).toEqual([
    'nixos-rebuild',
    'nix',
    'nix-env',
    'switch-to-configuration',
  ]);

  // Activation fails with failed units: the wrapper says exit 1 + warning, and the profile HAS moved.
  const rev2 = await repo.updateLock({ version: 'delta-units' });
  delta.failActivation('units');
  const units = await s.exec(`nixos-rebuild switch --flake ${shellQuote(`${repo.flakeRef(rev2)}#delta`)}`);
  expect(units.code).toBe(1);
  expect(units.stderr).toContain('warning: error(s) occurred while switching to the new configuration');
  expect(delta.profileGeneration().number).toBe(44);
  expect(delta.currentSystem()).toBe(delta.profileGeneration().storePath);
  // switch-to-configuration itself exits 4 (units) or 2 (script).
  const direct4 = await s.exec('/nix/var/nix/profiles/system/bin/switch-to-configuration switch');
  expect(direct4.code).toBe(4);
  delta.failActivation('script');
  const direct2 = await s.exec('/nix/var/nix/profiles/system/bin/switch-to-configuration switch');
  expect(direct2.code).toBe(2);
  delta.failActivation(false);

  // Build failure: exit 1, no new generation, nothing activated.
  delta.failBuild(true);
  const rev3 = await repo.updateLock({ version: 'delta-broken' });
  const activationsBefore = delta.activations().length;
  const broken = await s.exec(`nixos-rebuild switch --flake ${shellQuote(`${repo.flakeRef(rev3)}#delta`)}`);
  expect(broken.code).toBe(1);
  expect(broken.stderr).toMatch(/error: builder for .* failed/);
  expect(delta.profileGeneration().number).toBe(44);
  expect(delta.activations().length).toBe(activationsBefore);
  delta.failBuild(false);

  // The relative --rollback of the real tool goes back one generation each time it runs.
  expect((await s.exec('nixos-rebuild switch --rollback')).code).toBe(0);
  expect((await s.exec('nixos-rebuild switch --rollback')).code).toBe(0);
  expect(delta.profileGeneration()).toEqual(before);
});

test('home-manager: switch creates a generation, `generations` lists them, an old activate makes a NEW generation', async () => {
  const gamma = fleet.host('gamma');
  const s = await sessionTo('gamma');
  const seeded = gamma.generations();
  const r = await s.exec(`home-manager switch --flake ${shellQuote(`${repo.flakeRef(rev1)}#gamma`)}`);
  expect(r.code).toBe(0);
  const g = gamma.profileGeneration();
  expect(g.number).toBe(43);
  expect(g.storePath).toMatch(/-home-manager-generation$/);
  expect(gamma.currentSystem()).toBe(g.storePath);

  const gens = await s.run('home-manager generations');
  const lines = gens.stdout.trim().split('\n');
  expect(lines).toHaveLength(4);
  for (const l of lines) expect(l).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2} : id \d+ -> \/nix\/store\/[0-9a-z]{32}-home-manager-generation$/);
  expect(lines[0]).toContain(`id 43 -> ${g.storePath}`);

  const old = seeded.find((x) => x.number === 41);
  expect(old).toBeDefined();
  expect((await s.exec(`${shellQuote(old?.storePath ?? '')}/activate`)).code).toBe(0);
  expect(gamma.profileGeneration()).toEqual({ number: 44, storePath: old?.storePath });
  // Running it again does not create another generation.
  expect((await s.exec(`${shellQuote(old?.storePath ?? '')}/activate`)).code).toBe(0);
  expect(gamma.profileGeneration().number).toBe(44);
});

test('kill() is a power cut mid-command; restart() boots on the boot default', async () => {
  const eps = fleet.host('eps');
  const s = await sessionTo('eps');
  eps.hangActivation(true);
  const rev = await repo.updateLock({ version: 'eps-hang' });
  const running = s.exec(`nixos-rebuild switch --flake ${shellQuote(`${repo.flakeRef(rev)}#eps`)}`);
  await waitFor('activation to hang', () => eps.commandLog().some((e) => e.tool === 'hang'));
  // The profile has moved, /run/current-system has not.
  expect(eps.profileGeneration().number).toBe(43);
  expect(eps.currentSystem()).not.toBe(eps.profileGeneration().storePath);
  const t0 = Date.now();
  await eps.kill();
  await expect(running).rejects.toBeInstanceOf(ConnectionLostError);
  figures['kill() to ConnectionLostError'] = `${Date.now() - t0} ms`;
  expect(processesMentioning(eps.dir)).toEqual([]);
  await expect(connect(fleet, eps)).rejects.toBeInstanceOf(HostUnreachableError);

  eps.hangActivation(false);
  await eps.restart();
  // After a reboot the system runs the boot default (the bootloader was written before activation).
  expect(eps.currentSystem()).toBe(eps.profileGeneration().storePath);
  const s2 = await sessionTo('eps');
  expect((await s2.run('hostname')).stdout.trim()).toBe('eps');
});

test('hangActivation(false) releases a blocked activation', async () => {
  const alpha = fleet.host('alpha');
  const s = await sessionTo('alpha');
  alpha.hangActivation(true);
  const running = s.exec('/nix/var/nix/profiles/system/bin/switch-to-configuration switch');
  await waitFor('activation to hang', () => alpha.commandLog().some((e) => e.tool === 'hang'));
  alpha.hangActivation(false);
  expect((await running).code).toBe(0);
});

describe('as strict as NixOS and systemd', () => {
  test('a transient unit runs with the manager environment: no PATH from the SSH session, no Nix, no coreutils', async () => {
    const s = await sessionTo('delta');
    // In the session, nix-env is found; inside a unit (with or without --wait), it is not (exit 127).
    expect((await s.exec('command -v nix-env')).code).toBe(0);
    const inUnit = await s.exec(`systemd-run --unit=env-probe --wait --pipe --collect --quiet -- /bin/sh -c ${shellQuote('echo "PATH=$PATH"; env | grep -c NIXFLEET_STANDIN_CONTROL; nix-env --version')}`);
    expect(inUnit.code).toBe(127);
    expect(inUnit.stdout).not.toContain(fleet.host('delta').controlDir);
    expect(inUnit.stdout).toMatch(/^PATH=\S*manager-path$/m);
    const coreutils = await s.exec(`systemd-run --unit=env-probe2 --wait --pipe --collect --quiet -- /bin/sh -c ${shellQuote('ln --version')}`);
    expect(coreutils.code).toBe(127);
    // A toplevel's own tools do not depend on PATH: they work from inside a unit by absolute path.
    const abs = await s.exec(`systemd-run --unit=env-probe3 --wait --pipe --collect --quiet -- /bin/sh -c ${shellQuote('/nix/var/nix/profiles/system/sw/bin/nix-env --list-generations -p /nix/var/nix/profiles/system')}`);
    expect(abs.code).toBe(0);
    expect(abs.stdout).toMatch(/42\s.*\(current\)/);
  });

  test('an elapsed timer stays loaded (RemainAfterElapse=yes): its name cannot be armed again until stopped; stop succeeds either way', async () => {
    const s = await sessionTo('delta');
    const delta = fleet.host('delta');
    const arm = (unit: string, marker: string) => s.exec(`systemd-run --unit=${unit} --on-active=1 --collect --quiet -- /bin/sh -c ${shellQuote(`echo fired > ${marker}`)}`);
    const marker = path.join(delta.controlDir, 'fired-1');
    expect((await arm('probe-timer', marker)).code).toBe(0);
    // Loaded while waiting: the same name is refused.
    const twice = await arm('probe-timer', marker);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toContain('already loaded');
    await waitFor('the timer to fire', () => fs.existsSync(marker), { timeoutMs: 15_000 });
    await waitFor('its service to finish', () => delta.commandLog().some((e) => e.tool === 'timer-done' && e.args[0] === 'probe-timer'), { timeoutMs: 15_000 });
    // Elapsed, still loaded: active, the name is still refused, and `stop` succeeds (exit 0).
    expect((await s.exec('systemctl is-active probe-timer.timer')).code).toBe(0);
    expect((await arm('probe-timer', marker)).code).toBe(1);
    expect((await s.exec('systemctl stop probe-timer.timer')).code).toBe(0);
    // Unloaded now: a second stop is exit 5, and the name can be armed again.
    expect((await s.exec('systemctl stop probe-timer.timer')).code).toBe(5);
    const again = await arm('probe-timer', path.join(delta.controlDir, 'fired-2'));
    expect(again.code).toBe(0);
    expect((await s.exec('systemctl stop probe-timer.timer')).code).toBe(0);
  });

  test('switch-to-configuration switch|boot write the boot default (the profile\'s current generation); test does not; restart() boots it', async () => {
    const s = await sessionTo('beta');
    const beta = fleet.host('beta');
    expect(beta.bootDefault()).toEqual({ number: 10, storePath: beta.profileGeneration().storePath });
    const gen9 = beta.generations().find((g) => g.number === 9)?.storePath as string;
    // `test` activates generation 9 without touching the boot loader.
    expect((await s.exec('/nix/var/nix/profiles/system-9-link/bin/switch-to-configuration test')).code).toBe(0);
    expect(beta.currentSystem()).toBe(gen9);
    expect(beta.bootDefault()?.number).toBe(10);
    // `switch` of generation 9's link without moving the profile: the default stays on the profile's (10).
    expect((await s.exec('/nix/var/nix/profiles/system-9-link/bin/switch-to-configuration switch')).code).toBe(0);
    expect(beta.bootDefault()?.number).toBe(10);
    // Move the profile, then `boot`: the default follows the profile; nothing is activated.
    expect((await s.exec('nix-env -p /nix/var/nix/profiles/system --switch-generation 8')).code).toBe(0);
    const activationsBefore = beta.activations().length;
    expect((await s.exec('/nix/var/nix/profiles/system/bin/switch-to-configuration boot')).code).toBe(0);
    expect(beta.bootDefault()).toEqual({ number: 8, storePath: beta.profileGeneration().storePath });
    expect(beta.activations().length).toBe(activationsBefore);
    // A reboot runs the boot default.
    expect((await s.exec('nix-env -p /nix/var/nix/profiles/system --switch-generation 10')).code).toBe(0);
    await beta.restart();
    expect(beta.currentSystem()).toBe(beta.generations().find((g) => g.number === 8)?.storePath);
    // Put beta back as it was for the other tests.
    const s2 = await sessionTo('beta');
    expect((await s2.exec('/nix/var/nix/profiles/system/bin/switch-to-configuration switch')).code).toBe(0);
    expect(beta.bootDefault()?.number).toBe(10);
  });

  test('nix-collect-garbage -d at any point: old generations go, and every store path dead from the host\'s own roots is gone for that host (a GC root keeps one)', async () => {
    const zeta = fleet.host('zeta');
    const s = await sessionTo('zeta');
    const gens = zeta.generations();
    const [g40, g41, g42] = gens.map((g) => g.storePath) as [string, string, string];
    // A GC root on generation 40's store path, as `nix-store --add-root` makes it.
    expect((await s.exec(`nix-store --add-root /nix/var/nix/gcroots/probe/g40 -r ${shellQuote(g40)}`)).code).toBe(0);
    const deleted = await zeta.collectGarbage();
    // -d: only the current generation is left; 41 was not rooted and is gone; 40 (rooted) and 42 (current) stay.
    expect(zeta.generations().map((g) => g.number)).toEqual([42]);
    expect(deleted).toContain(g41);
    expect(deleted).not.toContain(g40);
    expect(deleted).not.toContain(g42);
    expect(zeta.collectedPaths()).toEqual(deleted);
    const probe = async (p: string) => (await s.exec(`test -x ${shellQuote(p)}/bin/switch-to-configuration`)).code;
    expect(await probe(g41)).not.toBe(0);
    expect(await probe(g40)).toBe(0);
    expect(await probe(g42)).toBe(0);
    // A deleted path cannot become a generation again, nor be realised; other hosts still have theirs.
    const set = await s.exec(`nix-env -p /nix/var/nix/profiles/system --set ${shellQuote(g41)}`);
    expect(set.code).toBe(1);
    expect(set.stderr).toContain('no substituter');
    expect((await s.exec(`nix-store -r ${shellQuote(g41)}`)).code).toBe(1);
    expect(fs.existsSync(path.join(g41, 'bin', 'switch-to-configuration'))).toBe(true);
    // Still deleted after a reboot.
    await zeta.restart();
    const s2 = await sessionTo('zeta');
    expect((await s2.exec(`test -x ${shellQuote(g41)}/bin/switch-to-configuration`)).code).not.toBe(0);
    // Home Manager: its old generations go too; the activated one is an (indirect) root.
    const eta = fleet.host('eta');
    const hm = eta.generations().map((g) => g.storePath);
    const hmDeleted = await eta.collectGarbage();
    expect(eta.generations().map((g) => g.number)).toEqual([42]);
    expect(hmDeleted.sort()).toEqual([hm[0], hm[1]].sort());
    const s3 = await sessionTo('eta');
    expect((await s3.exec(`test -x ${shellQuote(hm[0] as string)}/activate`)).code).not.toBe(0);
    expect((await s3.exec(`test -x ${shellQuote(hm[2] as string)}/activate`)).code).toBe(0);
  });
});
