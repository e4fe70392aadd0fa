/**
 * The product's host operations (src/hosts) against the stand-in fleet: real sshd, real Nix.
 * Fails (does not skip) when sshd or nix is missing.
 */
import * as fs from 'node:fs';
import { createFleetFlakeRepo, startFleet, waitFor } from '../../testkit/fleet';
import type { FleetFlakeRepo, StandinFleet, StandinHost } from '../../testkit/fleet';
import {
  AuthenticationFailedError,
  CommandTimeoutError,
  ConnectionLostError,
  HostKeyMismatchError,
  HostUnreachableError,
  InvalidInputError,
  RollbackTargetMissingError,
  TargetMismatchError,
  readGeneration,
  rollbackTo,
  switchTo,
} from '../../src/hosts';
import type { HostSession, HostTarget } from '../../src/hosts';
import { execFileSync } from 'node:child_process';
import { connect, figures, printFigures } from './helpers';

let fleet: StandinFleet;
let repo: FleetFlakeRepo;
let flakeRef: string;
const sessions: HostSession[] = [];

const NIXOS = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7', 'n8'];
const HM = ['h1', 'h2', 'h3'];

async function session(name: string, extra: Parameters<typeof connect>[2] = {}): Promise<HostSession> {
  const s = await connect(fleet, fleet.host(name), extra);
  sessions.push(s);
  return s;
}
function target(h: StandinHost, extra: Partial<HostTarget> = {}): HostTarget {
  return { name: h.name, kind: h.kind, attr: h.name, ...extra };
}
const switches = (h: StandinHost) => h.activations().length;
const profileMoves = (h: StandinHost) =>
  h.commandLog().filter((e) => e.tool === 'nix-env' && e.args.some((a) => a === '--set' || a === '--switch-generation' || a === '--rollback')).length;

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
  printFigures('host operations figures');
});

test('readGeneration reads the seeded generation and what is activated', async () => {
  const n1 = fleet.host('n1');
  const s = await session('n1');
  const g = await readGeneration(s, 'nixos');
  expect(g).toEqual({ ...n1.profileGeneration(), currentSystem: n1.currentSystem(), profile: '/nix/var/nix/profiles/system' });
  expect(g.number).toBe(42);
  const h1 = fleet.host('h1');
  const hg = await readGeneration(await session('h1'), 'home-manager');
  expect(hg).toMatchObject({ ...h1.profileGeneration(), currentSystem: h1.currentSystem() });
  expect(hg.profile).toBe('/root/.local/state/nix/profiles/home-manager');
});

test('switch creates generation 43 and moves /run/current-system; a retried switch does not switch twice', async () => {
  const n1 = fleet.host('n1');
  const s = await session('n1');
  const t0 = Date.now();
  const r = await switchTo(s, target(n1), { flakeRef });
  figures['switchTo (NixOS, first build on the host, over one SSH connection)'] = `${Date.now() - t0} ms`;
  expect(r.outcome).toBe('switched');
  if (r.outcome !== 'switched') return;
  expect(r.before.number).toBe(42);
  expect(r.after.number).toBe(43);
  expect(r.after.storePath).toBe(r.target);
  expect(n1.profileGeneration()).toEqual({ number: 43, storePath: r.target });
  expect(n1.currentSystem()).toBe(r.target);
  expect(switches(n1)).toBe(1);
  expect(profileMoves(n1)).toBe(1);

  // The activity is retried (e.g. the worker crashed before recording the result).
  const t1 = Date.now();
  const again = await switchTo(s, target(n1), { flakeRef, expectedStorePath: r.target });
  figures['switchTo retried, already on target'] = `${Date.now() - t1} ms`;
  expect(again.outcome).toBe('already-on-target');
  expect(switches(n1)).toBe(1);
  expect(profileMoves(n1)).toBe(1);
  expect(n1.profileGeneration().number).toBe(43);

  // And from a brand-new connection, as a retry on another worker would.
  const fresh = await session('n1');
  expect((await switchTo(fresh, target(n1), { flakeRef })).outcome).toBe('already-on-target');
  expect(switches(n1)).toBe(1);
});

test('rollbackTo the recorded generation, run twice, lands exactly on it (never two back)', async () => {
  const n1 = fleet.host('n1');
  const s = await session('n1');
  const recorded = { number: 42, storePath: n1.generations().find((g) => g.number === 42)?.storePath ?? '' };
  expect(n1.profileGeneration().number).toBe(43); // from the previous test
  const movesBefore = profileMoves(n1);
  const t0 = Date.now();
  const r1 = await rollbackTo(s, target(n1), recorded);
  figures['rollbackTo (NixOS)'] = `${Date.now() - t0} ms`;
  expect(r1.outcome).toBe('rolled-back');
  expect(n1.profileGeneration()).toEqual(recorded);
  expect(n1.currentSystem()).toBe(recorded.storePath);
  const r2 = await rollbackTo(s, target(n1), recorded);
  expect(r2.outcome).toBe('already-at-recorded');
  expect(n1.profileGeneration()).toEqual(recorded);
  expect(n1.currentSystem()).toBe(recorded.storePath);
  expect(profileMoves(n1)).toBe(movesBefore + 1);
  // The switch-generation was pinned, not relative.
  const moves = n1.commandLog().filter((e) => e.tool === 'nix-env' && e.args.includes('--switch-generation'));
  expect(moves.map((e) => e.args)).toEqual([['-p', '/nix/var/nix/profiles/system', '--switch-generation', '42']]);
  expect(n1.commandLog().some((e) => e.args.includes('--rollback'))).toBe(false);
  // The generations are all still there.
  expect(n1.generations().map((g) => g.number)).toEqual([40, 41, 42, 43]);
});

test('rollbackTo refuses a recorded generation whose link now points elsewhere, or whose link and store path are both gone', async () => {
  const n1 = fleet.host('n1');
  const s = await session('n1');
  const g40 = n1.generations().find((g) => g.number === 40);
  await expect(rollbackTo(s, target(n1), { number: 41, storePath: g40?.storePath ?? '' })).rejects.toBeInstanceOf(RollbackTargetMissingError);
  // No generation 99 and no such store path on the host (a link gone with its store path present is
  // rolled back to by store path: tests/fleet/real-host.test.ts).
  await expect(rollbackTo(s, target(n1), { number: 99, storePath: '/nix/store/00000000000000000000000000000000-nixos-system-n1-gone' })).rejects.toBeInstanceOf(
    RollbackTargetMissingError,
  );
  expect(n1.profileGeneration().number).toBe(42);
});

test("failActivation('units'): exit 4 reported, the profile HAS moved; rollback restores the recorded generation", async () => {
  const n2 = fleet.host('n2');
  const s = await session('n2');
  const before = await readGeneration(s, 'nixos');
  n2.failActivation('units');
  const r = await switchTo(s, target(n2), { flakeRef });
  expect(r).toMatchObject({ outcome: 'failed', phase: 'activation', exitCode: 4, failedUnits: true, profileMoved: true });
  if (r.outcome !== 'failed') return;
  expect(r.after.number).toBe(43);
  expect(r.after.storePath).toBe(r.target);
  expect(r.after.currentSystem).toBe(r.target); // the system IS on the new generation
  expect(r.stderrTail).toContain('the following units failed');
  expect(n2.profileGeneration().number).toBe(43);

  n2.failActivation(false);
  const rb = await rollbackTo(s, target(n2), before);
  expect(rb.outcome).toBe('rolled-back');
  expect((await rollbackTo(s, target(n2), before)).outcome).toBe('already-at-recorded');
  expect(n2.profileGeneration()).toEqual({ number: 42, storePath: before.storePath });
  expect(n2.currentSystem()).toBe(before.storePath);
});

test("failActivation('script'): exit 2, profile moved", async () => {
  const n3 = fleet.host('n3');
  n3.failActivation('script');
  const r = await switchTo(await session('n3'), target(n3), { flakeRef });
  expect(r).toMatchObject({ outcome: 'failed', phase: 'activation', exitCode: 2, failedUnits: false, profileMoved: true });
  n3.failActivation(false);
});

test('a build failure fails before the profile moves: no new generation, nothing activated; rollback is a no-op', async () => {
  const n4 = fleet.host('n4');
  const s = await session('n4');
  const before = await readGeneration(s, 'nixos');
  n4.failBuild(true);
  const r = await switchTo(s, target(n4), { flakeRef });
  expect(r).toMatchObject({ outcome: 'failed', phase: 'build', profileMoved: false, exitCode: 1 });
  expect(n4.generations().map((g) => g.number)).toEqual([40, 41, 42]);
  expect(switches(n4)).toBe(0);
  n4.failBuild(false);
  // A relative rollback here would go one too far; the pinned one does nothing.
  expect((await rollbackTo(s, target(n4), before)).outcome).toBe('already-at-recorded');
  expect(n4.profileGeneration().number).toBe(42);
  expect(profileMoves(n4)).toBe(0);
});

test('with the nixos-rebuild template: exit 1 + warning, still classified as activation failed with the profile moved', async () => {
  const n5 = fleet.host('n5');
  const s = await session('n5');
  n5.failActivation('units');
  const r = await switchTo(s, target(n5, { commands: { switch: 'nixos-rebuild switch --flake {flake}' } }), { flakeRef });
  expect(r).toMatchObject({ outcome: 'failed', phase: 'activation', exitCode: 1, failedUnits: false, profileMoved: true });
  if (r.outcome === 'failed') expect(r.stderrTail).toContain('warning: error(s) occurred while switching to the new configuration');
  n5.failActivation(false);
  expect(n5.commandLog().filter((e) => e.tool === 'nixos-rebuild')).toHaveLength(1);
});

test('host killed mid-activation: ConnectionLostError; after the reboot a retried switch finds it on the target', async () => {
  const n6 = fleet.host('n6');
  const s = await session('n6');
  n6.hangActivation(true);
  const running = switchTo(s, target(n6), { flakeRef });
  await waitFor('activation to hang', () => n6.commandLog().some((e) => e.tool === 'hang'));
  const t0 = Date.now();
  await n6.kill();
  const err = await running.catch((e: unknown) => e);
  figures['host killed → ConnectionLostError'] = `${Date.now() - t0} ms`;
  expect(err).toBeInstanceOf(ConnectionLostError);
  expect(err).toMatchObject({ code: 'CONNECTION_LOST' });
  expect(n6.profileGeneration().number).toBe(43);

  n6.hangActivation(false);
  await n6.restart();
  // The reboot activated the boot default, which is the new generation (the profile had moved).
  // Same session object: it reconnects before the next command (nothing was running).
  const r = await switchTo(s, target(n6), { flakeRef });
  expect(r.outcome).toBe('already-on-target');
  expect(n6.generations().map((g) => g.number)).toEqual([40, 41, 42, 43]);
  expect(switches(n6)).toBe(1);
  expect(profileMoves(n6)).toBe(1);
});

test('activation killed after the profile moved: reported as such; a retry only finishes the activation', async () => {
  const n5 = fleet.host('n5');
  const s = await session('n5');
  const before = await readGeneration(s, 'nixos');
  const rev = await repo.updateLock({ version: 'n5-killed' });
  n5.hangActivation(true);
  const running = switchTo(s, target(n5), { flakeRef: repo.flakeRef(rev) });
  await waitFor('activation to hang', () => n5.commandLog().filter((e) => e.tool === 'hang').length === 1);
  // Something on the host kills the activation (OOM killer, an operator, a dying SSH session).
  const other = await session('n5');
  await other.run('pkill -KILL -f nixfleet-standin-activate');
  const r = await running;
  expect(r).toMatchObject({ outcome: 'failed', phase: 'activation', profileMoved: true, exitCode: null });
  expect(n5.currentSystem()).toBe(before.storePath);
  n5.hangActivation(false);
  const movesBefore = profileMoves(n5);
  const t1 = Date.now();
  const again = await switchTo(s, target(n5), { flakeRef: repo.flakeRef(rev) });
  figures['switchTo retried after a killed activation (activation only)'] = `${Date.now() - t1} ms`;
  expect(again).toMatchObject({ outcome: 'switched', resumedActivation: true });
  expect(profileMoves(n5)).toBe(movesBefore);
  expect(n5.currentSystem()).toBe(n5.profileGeneration().storePath);
});

test('Home Manager: switch, retried switch, rollback by store path (twice)', async () => {
  const h1 = fleet.host('h1');
  const s = await session('h1');
  const before = await readGeneration(s, 'home-manager');
  const t0 = Date.now();
  const r = await switchTo(s, target(h1), { flakeRef });
  figures['switchTo (Home Manager)'] = `${Date.now() - t0} ms`;
  expect(r.outcome).toBe('switched');
  if (r.outcome !== 'switched') return;
  expect(r.after.number).toBe(43);
  expect(h1.currentSystem()).toBe(r.target);
  expect((await switchTo(s, target(h1), { flakeRef })).outcome).toBe('already-on-target');
  expect(switches(h1)).toBe(1);

  const rb = await rollbackTo(s, target(h1), before);
  expect(rb.outcome).toBe('rolled-back');
  // HM rolls back by activating the recorded store path: a NEW generation pointing at it.
  expect(h1.profileGeneration()).toEqual({ number: 44, storePath: before.storePath });
  expect(h1.currentSystem()).toBe(before.storePath);
  expect((await rollbackTo(s, target(h1), before)).outcome).toBe('already-at-recorded');
  expect(h1.generations().map((g) => g.number)).toEqual([40, 41, 42, 43, 44]);
  expect(switches(h1)).toBe(2);
});

test('Home Manager failures: checkLinkTargets (before the profile moves) vs units (after)', async () => {
  const h2 = fleet.host('h2');
  const s = await session('h2');
  h2.failActivation('script');
  const r1 = await switchTo(s, target(h2), { flakeRef });
  expect(r1).toMatchObject({ outcome: 'failed', phase: 'before-profile-move', profileMoved: false });
  expect(h2.profileGeneration().number).toBe(42);
  h2.failActivation('units');
  const r2 = await switchTo(s, target(h2), { flakeRef });
  expect(r2).toMatchObject({ outcome: 'failed', phase: 'activation', profileMoved: true });
  expect(h2.profileGeneration().number).toBe(43);
  h2.failActivation(false);
});

test('expectedStorePath that the flake does not build is refused before anything moves', async () => {
  const n7 = fleet.host('n7');
  const other = n7.generations()[0]?.storePath ?? '';
  await expect(switchTo(await session('n7'), target(n7), { flakeRef, expectedStorePath: other })).rejects.toBeInstanceOf(TargetMismatchError);
  expect(profileMoves(n7)).toBe(0);
});

test('a cut link is detected through keepalive within a deadline; connecting to it times out; restoring it works', async () => {
  const n8 = fleet.host('n8');
  const s = await session('n8', { keepaliveIntervalMs: 300, keepaliveCountMax: 2 });
  const running = s.exec('sleep 60');
  await waitFor('sleep to start on the host', async () => {
    const probe = await connect(fleet, n8);
    const r = await probe.exec('pgrep -x sleep');
    await probe.close();
    return r.code === 0;
  });
  await n8.cutLink();
  const t0 = Date.now();
  const err = await running.catch((e: unknown) => e);
  const detected = Date.now() - t0;
  figures['cut link detected by keepalive (interval 300 ms, countMax 2)'] = `${detected} ms`;
  expect(err).toBeInstanceOf(ConnectionLostError);
  expect((err as ConnectionLostError).reason).toMatch(/keepalive/);
  expect(detected).toBeLessThan(3000);
  // Processes keep running on a cut host.
  expect(n8.running).toBe(true);
  const t1 = Date.now();
  await expect(connect(fleet, n8, { readyTimeoutMs: 800 })).rejects.toBeInstanceOf(HostUnreachableError);
  figures['connect to a cut host → HostUnreachableError (readyTimeout 800 ms)'] = `${Date.now() - t1} ms`;
  await n8.restoreLink();
  const again = await session('n8');
  expect((await again.run('hostname')).stdout.trim()).toBe('n8');
});

test('a dead host refuses at once: HostUnreachableError (nothing ran)', async () => {
  const n7 = fleet.host('n7');
  await n7.kill();
  const t0 = Date.now();
  const err = await connect(fleet, n7).catch((e: unknown) => e);
  figures['connect to a dead host → HostUnreachableError'] = `${Date.now() - t0} ms`;
  expect(err).toBeInstanceOf(HostUnreachableError);
  expect(err).toMatchObject({ code: 'HOST_UNREACHABLE', reason: 'ECONNREFUSED' });
  await n7.restart();
});

test('unknown and changed host keys are refused before authentication', async () => {
  const n3 = fleet.host('n3');
  const logBefore = n3.commandLog().length;
  const accepted = () => (n3.sshdLog().match(/Accepted publickey/g) ?? []).length;
  const acceptedBefore = accepted();
  // Unknown: nothing pinned for this address:port.
  const unknown = await connect(fleet, n3, { knownHosts: fleet.knownHosts.split('\n').filter((l) => !l.startsWith(`[${n3.address}]:${n3.port} `)).join('\n') }).catch((e: unknown) => e);
  expect(unknown).toBeInstanceOf(HostKeyMismatchError);
  expect(unknown).toMatchObject({ code: 'HOST_KEY_MISMATCH', reason: 'unknown' });
  expect((unknown as Error).message).toMatch(/not known/);
  // Changed: another host's key pinned for this address:port (a spoofed or re-installed host).
  const n4 = fleet.host('n4');
  const changed = await connect(fleet, n3, { knownHosts: `[${n3.address}]:${n3.port} ${n4.hostPublicKey}\n` }).catch((e: unknown) => e);
  expect(changed).toBeInstanceOf(HostKeyMismatchError);
  expect(changed).toMatchObject({ reason: 'changed' });
  expect((changed as Error).message).toMatch(/HOST KEY CHANGED/);
  // Refused before authentication: sshd never accepted a key for these attempts.
  expect(accepted()).toBe(acceptedBefore);
  // An explicit public key works as a pin too; a wrong one is refused.
  const ok = await connect(fleet, n3, { knownHosts: '', hostPublicKey: n3.hostPublicKey });
  await ok.close();
  await expect(connect(fleet, n3, { knownHosts: '', hostPublicKey: n4.hostPublicKey })).rejects.toBeInstanceOf(HostKeyMismatchError);
  expect(n3.commandLog().length).toBe(logBefore);
  // A key the host does not authorize.
  const strangerFile = `${fleet.baseDir}/stranger_ed25519`;
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', strangerFile]);
  await expect(connect(fleet, n3, { privateKey: fs.readFileSync(strangerFile, 'utf8') })).rejects.toBeInstanceOf(AuthenticationFailedError);
});

test('exec with a deadline: CommandTimeoutError, outcome unknown', async () => {
  const s = await session('n3');
  const err = await s.exec('sleep 30', { timeoutMs: 300 }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(CommandTimeoutError);
  expect(err).toMatchObject({ code: 'COMMAND_TIMEOUT' });
  // The connection is still usable.
  expect((await s.run('echo ok')).stdout).toBe('ok\n');
});

test('shell metacharacters in inputs are rejected (field named) before anything runs, or quoted harmlessly', async () => {
  const n3 = fleet.host('n3');
  const s = await session('n3');
  const logBefore = n3.commandLog().length;
  const pwned = `/tmp/nixfleet-pwned-${process.pid}`;
  const bad = async (p: Promise<unknown>, field: string) => {
    const e = await p.catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InvalidInputError);
    expect((e as InvalidInputError).field).toBe(field);
  };
  await bad(switchTo(s, target(n3), { flakeRef: `${flakeRef};touch ${pwned}` }), 'flakeRef');
  await bad(switchTo(s, target(n3), { flakeRef: `$(touch ${pwned})` }), 'flakeRef');
  await bad(switchTo(s, target(n3), { flakeRef: `${flakeRef}#n3` }), 'flakeRef');
  await bad(switchTo(s, target(n3), { flakeRef, attr: 'n3`touch x`' }), 'attr');
  await bad(switchTo(s, target(n3), { flakeRef, attr: 'n3" ; touch x' }), 'attr');
  await bad(rollbackTo(s, target(n3), { number: 42, storePath: `/nix/store/x'; touch ${pwned}; '` }), 'recorded.storePath');
  await bad(rollbackTo(s, target(n3), { number: -1, storePath: n3.profileGeneration().storePath }), 'recorded.number');
  await bad(switchTo(s, target(n3, { commands: { switch: 'nixos-rebuild switch --flake "{flake}"' } }), { flakeRef }), 'commands.switch');
  await bad(switchTo(s, target(n3, { commands: { switch: 'nixos-rebuild switch --flake {flake} {evil}' } }), { flakeRef }), 'commands.switch');
  expect(n3.commandLog().length).toBe(logBefore);
  expect(fs.existsSync(pwned)).toBe(false);

  // Quoting: a hostile value passes through a remote shell as one literal argument.
  const { shellQuote } = await import('../../src/hosts');
  for (const v of [`'; touch ${pwned}; '`, `$(touch ${pwned})`, '`id`', 'a b\tc', `"'"'`, '\\', '*', '#x', '']) {
    const r = await s.run(`printf '%s' ${shellQuote(v)}`);
    expect(r.stdout).toBe(v);
  }
  expect(fs.existsSync(pwned)).toBe(false);
});
