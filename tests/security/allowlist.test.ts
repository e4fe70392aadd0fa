/**
 * The forced-command allowlist (deploy/nixfleet-allowlist.sh) on real stand-in hosts: the deployer's
 * key is `restrict,command="…/nixfleet-allowlist.sh"` in authorized_keys. The product's own verbs
 * (read, build, profile move, activation, rollback; NixOS and Home Manager) pass and are logged; hostile
 * values in every field that reaches a host never execute: a canary file they would create never
 * appears, whether the product's validators refuse them first (nothing reaches the host) or the host's
 * allowlist refuses them (logged as deny).
 */
import { waitFor } from '../support/temporal';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { createFleetFlakeRepo, startFleet, type FleetFlakeRepo, type StandinFleet, type StandinHost } from '../../testkit/fleet';
import {
  confirmSelfRollback,
  failedUnits,
  gcRootName,
  hmActivationLock,
  listGenerations,
  runCheckCommand,
  sweepStaleRoots,
  writeSwitchMarker,
  HostSession,
  InvalidInputError,
  pinStorePath,
  readGeneration,
  readRecordedRoot,
  removeSwitchMarker,
  stopActivation,
  stopBuild,
  buildLock,
  switchMarkerName,
  rollbackTo,
  switchTo,
  unpinStorePath,
  type HostTarget,
} from '../../src/hosts';
import { gcSweepAgeSeconds } from '../../src/domain/gc-roots';
import { ALLOWLIST_SCRIPT } from '../../testkit/fleet/fleet';
import { recorder } from '../faults/figures';
import { buildTarget } from '../../src/hosts/operations';
import { diffClosures } from '../../src/hosts/closure-diff';
import { bootInto, bootRecorded, readBootCommand, readBootState, rebootCommand, requestReboot } from '../../src/hosts/reboot';

const rec = recorder(__filename);
let fleet: StandinFleet;
let repo: FleetFlakeRepo;
let flakeRef: string;
let canaryDir: string;
const sessions: HostSession[] = [];

beforeAll(async () => {
  canaryDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nixfleet-canary-'));
  fleet = await startFleet(
    [
      { name: 'a1', kind: 'nixos' },
      { name: 'a2', kind: 'nixos' },
      { name: 'a3', kind: 'nixos' },
      { name: 'm1', kind: 'home-manager' },
    ],
    { allowlist: true },
  );
  repo = await createFleetFlakeRepo(fleet.baseDir, ['a1', 'a2', 'a3', 'm1'], { version: 'v1' });
  await repo.updateLock({ version: 'v2' });
  flakeRef = repo.flakeRef(await repo.head());
});
afterAll(async () => {
  for (const s of sessions) await s.close();
  await fleet?.stop();
  fs.rmSync(canaryDir, { recursive: true, force: true });
  rec.save();
});

async function session(h: StandinHost): Promise<HostSession> {
  const s = await HostSession.connect({ address: h.address, port: h.port, user: h.user, privateKey: fleet.clientPrivateKey, knownHosts: fleet.knownHosts, label: h.name, readyTimeoutMs: 5000 });
  sessions.push(s);
  return s;
}
const target = (h: StandinHost, extra: Partial<HostTarget> = {}): HostTarget => ({ name: h.name, kind: h.kind, attr: h.name, ...extra });
const canaries = (): string[] => fs.readdirSync(canaryDir);

/** Shell payloads that would each create a distinct canary file if any shell evaluated them. */
function payloads(id: string): string[] {
  const f = path.join(canaryDir, id);
  return [
    `; touch ${f}-semi`,
    `$(touch ${f}-subst)`,
    `\`touch ${f}-back\``,
    `| touch ${f}-pipe`,
    `&& touch ${f}-and`,
    `' ; touch ${f}-quote ; '`,
    `"; touch ${f}-dq; "`,
    `\ntouch ${f}-nl`,
    `& touch ${f}-bg &`,
    `> ${f}-redir`,
  ];
}

test('the product\'s own verbs pass the allowlist: switch and pinned rollback on NixOS and Home Manager, all logged', async () => {
  for (const name of ['a1', 'm1']) {
    const h = fleet.host(name);
    const s = await session(h);
    const before = await readGeneration(s, h.kind);
    const sw = await switchTo(s, target(h), { flakeRef });
    expect(sw.outcome).toBe('switched');
    const again = await switchTo(s, target(h), { flakeRef });
    expect(again.outcome).toBe('already-on-target');
    const rb = await rollbackTo(s, target(h), before);
    expect(rb.outcome).toBe('rolled-back');
    expect(h.profileGeneration().storePath).toBe(before.storePath);
    const log = h.allowlistLog();
    expect(log.filter((e) => e.verdict === 'deny')).toEqual([]);
    const verbs = new Set(log.map((e) => e.verb));
    const expected = h.kind === 'nixos' ? ['read-nixos', 'nix-build', 'nix-env-set', 'switch-to-configuration', 'readlink', 'nix-env-switch-generation'] : ['read-home-manager', 'nix-build', 'home-manager-switch', 'test-activate', 'hm-activate'];
    for (const v of expected) rec.check(`${name}: verb ${v} allowed and logged`, verbs.has(v), [...verbs]);
    rec.run();
  }
  // The documented template (commands.switch = nixos-rebuild switch --flake {flake}) passes too.
  const a2 = fleet.host('a2');
  const r = await switchTo(await session(a2), target(a2, { commands: { switch: 'nixos-rebuild switch --flake {flake}' } }), { flakeRef });
  expect(r.outcome).toBe('switched');
  rec.check('nixos-rebuild switch template allowed', a2.allowlistLog().some((e) => e.verb === 'nixos-rebuild-switch' && e.verdict === 'allow'));
  rec.run();
});

test('the way back passes the allowlist: GC roots, confirmation (arm, stop, is-active), boot default, rollback by store path after GC', async () => {
  for (const name of ['a2', 'm1']) {
    const h = fleet.host(name);
    const s = await session(h);
    const logBefore = h.allowlistLog().length;
    const before = await readGeneration(s, h.kind);
    // Record time: the recorded generation is pinned; the target after the build.
    await pinStorePath(s, h.kind, before.profile, gcRootName(`dep-${name}`, 'recorded'), before.storePath);
    // A wave that ended without its result: the deployment re-reads the pinned generation (readlink R).
    expect(await readRecordedRoot(s, h.kind, before.profile, `dep-${name}`)).toBe(before.storePath);
    await repo.updateLock({ version: `v3-${name}` });
    const ref = repo.flakeRef(await repo.head());
    const confirm = h.kind === 'nixos' ? { confirm: { unit: `nixfleet-rollback-dep-${name}-run1`, timeoutSeconds: 30, rollbackTo: before } } : {};
    const sw = await switchTo(s, target(h), { flakeRef: ref, ...confirm, recorded: before, marker: switchMarkerName(`dep-${name}`, 'run1') });
    expect(sw.outcome).toBe('switched');
    await pinStorePath(s, h.kind, before.profile, gcRootName(`dep-${name}`, 'target'), sw.target as string);
    if (h.kind === 'nixos') {
      const switched = { number: sw.after.number, storePath: sw.after.storePath };
      expect(await confirmSelfRollback(await session(h), `nixfleet-rollback-dep-${name}-run1`, { before, switched })).toBe('confirmed');
    }
    // Garbage collection between switch and rollback; the rollback lands on the recorded store path.
    const deleted = await h.collectGarbage();
    expect(deleted).not.toContain(before.storePath);
    const rb = await rollbackTo(s, target(h), before);
    expect(rb.outcome).toBe('rolled-back');
    expect(h.profileGeneration().storePath).toBe(before.storePath);
    // Run twice: a NixOS host still gets the recorded generation as its boot default.
    expect((await rollbackTo(s, target(h), before)).outcome).toBe('already-at-recorded');
    // The deployment closes: its roots go.
    await unpinStorePath(s, h.kind, before.profile, gcRootName(`dep-${name}`, 'recorded'));
    await unpinStorePath(s, h.kind, before.profile, gcRootName(`dep-${name}`, 'target'));
    await removeSwitchMarker(s, h.kind, before.profile, switchMarkerName(`dep-${name}`, 'run1'));
    // A cancelled activation is stopped by its lock (nothing holds it now: a no-op).
    if (h.kind === 'nixos') await stopActivation(s);
    const log = h.allowlistLog().slice(logBefore);
    expect(log.filter((e) => e.verdict === 'deny')).toEqual([]);
    const verbs = new Set(log.map((e) => e.verb));
    const marker = ['switch-marker-test', 'switch-marker-write', 'switch-marker-remove'];
    const expected =
      h.kind === 'nixos'
        ? ['gc-root-add', 'confirmed-activation', 'systemctl-stop-timer', 'systemctl-is-active', 'readlink', 'test-toplevel', 'nix-env-set', 'switch-to-configuration', 'switch-to-configuration-boot', 'gc-root-remove', 'stop-activation', ...marker]
        : ['gc-root-add', 'home-manager-switch', 'test-activate', 'hm-activate', 'gc-root-remove', ...marker];
    for (const v of expected) rec.check(`${name}: way-back verb ${v} allowed and logged`, verbs.has(v), [...verbs]);
    rec.run();
  }
  // Roots elsewhere, traversal and other units are refused.
  const s = await session(fleet.host('a1'));
  for (const cmd of [
    `nix-store --add-root '/etc/nixfleet-gcroots/x' -r '${fleet.host('a1').profileGeneration().storePath}'`,
    `rm -f '/nix/var/nix/gcroots/nixfleet/../profiles/system'`,
    `rm -f '/nix/var/nix/gcroots/auto/x'`,
    `systemctl is-active 'sshd.service'`,
    // Switch markers only under the deployer's switches directory, one name, the same directory.
    `mkdir -p '/etc/nixfleet' && touch '/etc/nixfleet/x'`,
    `mkdir -p '/nix/var/nix/gcroots/nixfleet/switches' && touch '/root/.local/state/nix/profiles/nixfleet-gcroots/switches/x'`,
    `mkdir -p '/nix/var/nix/gcroots/nixfleet/switches' && touch '/nix/var/nix/gcroots/nixfleet/switches/../../auto/x'`,
    `test -e '/nix/var/nix/gcroots/nixfleet/switches/../x'`,
    `rm -f '/nix/var/nix/gcroots/nixfleet/switches/../../auto/x'`,
    `rm -f '/nix/var/nix/gcroots/nixfleet/switches/*'`,
    // Activations only under the host's activation lock.
    `'${fleet.host('a1').profileGeneration().storePath}'/bin/switch-to-configuration switch`,
    `{ flock -n 9 || exit 75; exec '${fleet.host('a1').profileGeneration().storePath}'/bin/switch-to-configuration switch; } 9>/tmp/x.lock`,
  ]) {
    expect((await s.exec(cmd)).code).toBe(126);
  }
});

test('housekeeping and checks pass the allowlist: the sweep, generations listing, systemctl --failed, a vetted health check, stopping an activation by either lock; near misses are refused', async () => {
  for (const name of ['a1', 'm1']) {
    const h = fleet.host(name);
    const s = await session(h);
    const logBefore = h.allowlistLog().length;
    const g = await readGeneration(s, h.kind);
    // The sweep at record time (nothing old enough here: it removes nothing, and says so).
    await pinStorePath(s, h.kind, g.profile, gcRootName(`dep-house-${name}`, 'recorded'), g.storePath);
    await writeSwitchMarker(s, h.kind, g.profile, switchMarkerName(`dep-house-${name}`, 'run1'));
    expect(await sweepStaleRoots(s, h.kind, g.profile, `dep-house-${name}`, gcSweepAgeSeconds())).toEqual([]);
    // The superseded check lists the profile's generations.
    const gens = await listGenerations(s, g.profile);
    expect(gens.map((x) => x.number)).toContain(g.number);
    if (h.kind === 'nixos') {
      expect(await failedUnits(s)).toEqual([]);
      h.allowChecks(['systemctl is-active nginx.service || true']);
      expect((await runCheckCommand(s, 'systemctl is-active nginx.service || true', 10_000)).healthy).toBe(true);
      // A check the host owner did not vet never runs.
      expect((await runCheckCommand(s, 'systemctl is-active sshd.service || true', 10_000)).exitCode).toBe(126);
      await stopActivation(s);
    } else {
      await stopActivation(s, { lock: hmActivationLock(g.profile) });
    }
    // A cancelled or timed-out build is stopped by its lock (nothing holds it now: a no-op).
    await stopBuild(s, buildLock(h.kind, g.profile));
    await unpinStorePath(s, h.kind, g.profile, gcRootName(`dep-house-${name}`, 'recorded'));
    await removeSwitchMarker(s, h.kind, g.profile, switchMarkerName(`dep-house-${name}`, 'run1'));
    const log = h.allowlistLog().slice(logBefore);
    const denied = log.filter((e) => e.verdict === 'deny');
    expect(denied.map((e) => e.command)).toEqual(h.kind === 'nixos' ? ['systemctl is-active sshd.service || true'] : []);
    const verbs = new Set(log.filter((e) => e.verdict === 'allow').map((e) => e.verb));
    const expected = h.kind === 'nixos' ? ['gc-sweep', 'list-generations', 'systemctl-failed', 'health-check', 'stop-activation', 'stop-build'] : ['gc-sweep', 'list-generations', 'stop-activation', 'stop-build'];
    for (const v of expected) rec.check(`${name}: housekeeping verb ${v} allowed and logged`, verbs.has(v), [...verbs]);
    rec.run();
  }
  const a1 = fleet.host('a1');
  const s = await session(a1);
  const sp = a1.profileGeneration().storePath;
  const m1sp = fleet.host('m1').profileGeneration().storePath;
  const hmLock = "'/root/.local/state/nix/profiles/nixfleet-activation.lock'";
  let n = 0;
  for (const cmd of [
    // The sweep: only the deployer's directory, at least an hour, never without the current deployment kept.
    `find '/nix/var/nix/gcroots' -mindepth 1 -maxdepth 2 ! -type d -mmin +53280 ! -name 'dep-x-*' -print -delete`,
    `find '/nix/var/nix/gcroots/nixfleet' -mindepth 1 -maxdepth 2 ! -type d -mmin +5 ! -name 'dep-x-*' -print -delete`,
    `find '/nix/var/nix/gcroots/nixfleet' -mindepth 1 -maxdepth 9 ! -type d -mmin +53280 ! -name 'dep-x-*' -print -delete`,
    `find '/nix/var/nix/gcroots/nixfleet' -mindepth 1 -maxdepth 2 -mmin +53280 ! -name 'dep-x-*' -print -delete`,
    `find '/nix/var/nix/gcroots/nixfleet' -mindepth 1 -maxdepth 2 ! -type d -mmin +53280 -print -delete`,
    `find '/nix/var/nix/gcroots/nixfleet/../auto' -mindepth 1 -maxdepth 2 ! -type d -mmin +53280 ! -name 'dep-x-*' -print -delete`,
    // Activations only under their lock: unlocked boot, Home Manager activate and switch are refused.
    `'${sp}'/bin/switch-to-configuration boot`,
    `'${m1sp}'/activate`,
    `home-manager switch --flake '${flakeRef}#m1'`,
    `{ flock -n 9 || exit 75; exec '${sp}'/bin/switch-to-configuration test; } 9>/run/nixfleet-activation.lock`,
    `{ flock -n 9 || exit 75; exec '${m1sp}'/activate; } 9>'/tmp/nixfleet-activation.lock'`,
    `{ flock -n 9 || exit 75; exec '${m1sp}'/activate; } 9>'/root/.local/state/nix/profiles/../x/nixfleet-activation.lock'`,
    // Builds only holding their build lock (the form the product sends; the bare build is not).
    `nix build --no-link --json '${flakeRef}#nixosConfigurations."a1".config.system.build.toplevel'`,
    `{ exec nix build --no-link --json '${flakeRef}#nixosConfigurations."a1".config.system.build.toplevel'; } 9>/tmp/nixfleet-build.lock`,
    `{ exec nix build --no-link --json '${flakeRef}#homeConfigurations."m1".activationPackage'; } 9>'/root/.local/state/nix/profiles/../x/nixfleet-build.lock'`,
    `{ exec nix build --no-link --json '${flakeRef}#nixosConfigurations."a1".config.system.build.toplevel'; touch ${canaryDir}/build; } 9>/run/nixfleet-build.lock`,
    // Stopping by a lock: only the activation and build locks.
    `fuser -k -KILL '/root/.local/state/nix/profiles/../x/nixfleet-build.lock'`,
    `fuser -k -KILL /run/nixfleet-build.lock /run/sshd.pid`,
    `fuser -k -KILL /run/sshd.pid`,
    `fuser -k -KILL '/root/.local/state/nix/profiles/other.lock'`,
    `fuser -k -KILL ${hmLock} /run/sshd.pid`,
    // Listing only the system or a Home Manager profile.
    `for l in '/etc/passwd'-*-link; do [ -L "$l" ] && printf '%s %s\\n' "$l" "$(readlink -f "$l")"; done; true`,
  ]) {
    n += 1;
    expect({ cmd, code: (await s.exec(cmd)).code }).toEqual({ cmd, code: 126 });
  }
  rec.inputs(n);
  rec.check('near misses of the new verbs are all refused', true);
});

test('what will change passes the allowlist: the target is built, nix store diff-closures and nix path-info -S run on the host; other store diffs are refused', async () => {
  const h = fleet.host('a1');
  const s = await session(h);
  const logBefore = h.allowlistLog().length;
  const now = await readGeneration(s, h.kind);
  const built = await buildTarget(s, target(h), { flakeRef });
  expect(built.outcome).toBe('built');
  const to = (built as { target: string }).target;
  const d = await diffClosures(s, now.storePath, to);
  expect(d.from).toBe(now.storePath);
  expect(d.to).toBe(to);
  expect(d.changes.length).toBeGreaterThan(0);
  expect(d.sizeDeltaBytes).toBe(d.toClosureBytes - d.fromClosureBytes);
  const log = h.allowlistLog().slice(logBefore);
  expect(log.filter((e) => e.verdict === 'deny')).toEqual([]);
  const verbs = new Set(log.map((e) => e.verb));
  for (const v of ['nix-build', 'nix-diff-closures', 'nix-closure-size']) rec.check(`a1: verb ${v} allowed and logged`, verbs.has(v), [...verbs]);
  rec.run();
  // Hostile values never reach the host; a stolen key gets nothing but the exact two-store-path forms.
  for (const p of payloads('diff')) await expect(diffClosures(s, now.storePath, `${to}${p}`)).rejects.toBeInstanceOf(InvalidInputError);
  for (const cmd of [
    `nix store diff-closures '${now.storePath}' '/etc/passwd'`,
    `nix store diff-closures '${now.storePath}' '${to}' '${to}'`,
    `nix store diff-closures '${now.storePath}' '${to}'; touch ${canaryDir}/diff`,
    `nix path-info --json -S '${now.storePath}' '${to}' --recursive`,
    `nix path-info --json -S '/nix/store/../../etc'  '${to}'`,
    `nix store diff-closures ${now.storePath} ${to}`,
  ]) {
    expect((await s.exec(cmd)).code).toBe(126);
  }
  rec.check('no canary file created by refused diffs', canaries().length === 0, canaries());
});

test('durable reboots pass the allowlist: the boot state read, boot into a target, the reboot guarded by the boot id, the boot default back; near misses are refused', async () => {
  const h = fleet.host('a3');
  const s = await session(h);
  const logBefore = h.allowlistLog().length;
  const recorded = await readGeneration(s, h.kind);
  const built = await buildTarget(s, target(h), { flakeRef });
  const to = (built as { target: string }).target;
  const st = await readBootState(s, to);
  await bootInto(s, to);
  // Near misses never reach a shell: a boot id or store path with anything around it.
  for (const p of payloads('reboot')) await expect(requestReboot(s, `${st.bootId}${p}`)).rejects.toBeInstanceOf(InvalidInputError);
  for (const p of payloads('bootstate')) await expect(readBootState(s, `${to}${p}`)).rejects.toBeInstanceOf(InvalidInputError);
  for (const cmd of [
    rebootCommand(st.bootId).replace('exec systemctl reboot', 'exec systemctl poweroff'),
    rebootCommand(st.bootId) + `; touch ${canaryDir}/reboot`,
    rebootCommand(st.bootId).replace(st.bootId, '../../etc'),
    readBootCommand(to).replace('/run/current-system', '/etc/shadow'),
    readBootCommand(to) + `; touch ${canaryDir}/read-boot`,
  ]) {
    expect((await s.exec(cmd)).code).toBe(126);
  }
  expect(h.reboots).toBe(0);
  await requestReboot(s, st.bootId).catch(() => undefined);
  await waitFor('a3 to reboot', () => (h.reboots === 1 ? true : undefined), 20_000, 25);
  const back = await waitFor('a3 to come back', () => session(h).catch(() => undefined), 30_000, 200);
  expect((await readBootState(back, to)).bootedSystem).toBe(to);
  await bootRecorded(back, recorded);
  expect(h.bootDefault()?.storePath).toBe(recorded.storePath);
  const log = h.allowlistLog().slice(logBefore);
  const verbs = new Set(log.filter((e) => e.verdict === 'allow').map((e) => e.verb));
  for (const v of ['read-boot', 'reboot', 'nix-env-set', 'switch-to-configuration-boot', 'readlink', 'nix-env-switch-generation']) rec.check(`a3: verb ${v} allowed and logged`, verbs.has(v), [...verbs]);
  rec.check('no canary file created by refused reboot commands', canaries().length === 0, canaries());
  // Back on the recorded generation, live too, for the tests after this one.
  await rollbackTo(back, target(h), recorded);
});

test('the allowlist accepts exactly what the product sends: every verb it allows was used by the product in this file, none refused', () => {
  const script = fs.readFileSync(ALLOWLIST_SCRIPT, 'utf8');
  const offered = new Set([...script.matchAll(/log allow ([a-z-]+)/g)].map((m) => m[1] as string));
  // `log allow "$x"` forms would hide verbs from this count: there must be none.
  expect(script).not.toMatch(/log allow "/);
  const used = new Set(fleet.hosts.flatMap((h) => h.allowlistLog().filter((e) => e.verdict === 'allow').map((e) => e.verb)));
  const unused = [...offered].filter((v) => !used.has(v)).sort();
  const unknown = [...used].filter((v) => !offered.has(v)).sort();
  rec.check('every verb the allowlist offers is one the product sent (no dead allowance)', unused.length === 0, { unused });
  rec.check('every verb the product sent is one the allowlist offers', unknown.length === 0, { unknown });
  rec.note(`allowlist: ${offered.size} verbs offered, all ${used.size} used by the product's own operations on real hosts, none unused`);
});

test('hostile values in flakeRef, attr, recorded generation and store path are refused before anything reaches the host', async () => {
  const h = fleet.host('a2');
  const s = await session(h);
  const logBefore = h.allowlistLog().length;
  let n = 0;
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: 9 }), fc.constantFrom('flakeRef', 'attr', 'storePath', 'profileTemplate'), fc.nat(), async (i, field, k) => {
      const p = payloads(`v${k}`)[i] as string;
      n += 1;
      let err: unknown;
      try {
        if (field === 'flakeRef') await switchTo(s, target(h), { flakeRef: `${flakeRef}${p}` });
        else if (field === 'attr') await switchTo(s, target(h), { flakeRef, attr: `a2${p}` });
        else if (field === 'storePath') await rollbackTo(s, target(h), { number: 41, storePath: `${h.profileGeneration().storePath}${p}` });
        else await switchTo(s, target(h, { commands: { switch: `nixos-rebuild switch --flake "{flake}${p}"` } }), { flakeRef });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InvalidInputError);
    }),
    { numRuns: 120 },
  );
  rec.inputs(n);
  rec.check('no canary file created by refused values', canaries().length === 0, canaries());
  rec.check('refused values never reached the host (allowlist log unchanged)', h.allowlistLog().length === logBefore);
});

test('hostile commands that pass the product (command templates) or come from a stolen key are refused by the host\'s allowlist and never run', async () => {
  // Control: the payloads do create their canary when a shell evaluates them.
  for (const p of payloads('control')) execFileSync('/bin/sh', ['-c', `true ${p}`], { stdio: 'ignore' });
  // One payload runs in the background (`& touch … &`): wait for its canary rather than race it.
  await waitFor('the control canaries', () => (canaries().length >= 8 ? true : undefined), 10_000);
  for (const f of canaries()) fs.rmSync(path.join(canaryDir, f));
  const h = fleet.host('a1');
  const s = await session(h);
  const gen = h.profileGeneration();
  let n = 0;
  // A commands.switch template with a payload after {flake}: accepted by the product today (see
  // tests/property/fleet-file.property.test.ts), refused by the host.
  for (const [i, p] of payloads('tpl').entries()) {
    if (p.includes('\n') || p.includes('"')) continue; // the template validator refuses these itself
    const r = await switchTo(s, target(h, { commands: { switch: `nixos-rebuild switch --flake {flake} ${p}` } }), { flakeRef: `${flakeRef}&x=${i}` }).catch((e: unknown) => e);
    n += 1;
    if (!(r instanceof InvalidInputError)) expect((r as { outcome?: string }).outcome).toBe('failed');
  }
  // A stolen deployer key asking for anything at all.
  const raw = [
    ...payloads('raw').map((p) => `nix build --no-link --json 'x#y'${p}`),
    ...payloads('raw2').map((p) => `'${gen.storePath}'/bin/switch-to-configuration switch${p}`),
    ...payloads('raw3').map((p) => `nix-env -p '/nix/var/nix/profiles/system' --switch-generation '41'${p}`),
    `touch ${canaryDir}/plain`,
    `sh -c 'touch ${canaryDir}/sh'`,
    `nix-env -p '/etc/shadow' --set '${gen.storePath}'`,
    `readlink '/nix/var/nix/profiles/system-41-link/../../../../../etc/passwd'`,
  ];
  for (const cmd of raw) {
    const r = await s.exec(cmd, { timeoutMs: 10_000 });
    n += 1;
    expect(r.code).toBe(126);
    expect(r.stderr).toContain('nixfleet-allowlist: refused');
  }
  // Arbitrary strings from fast-check: whatever they are, no canary and nothing but refusals.
  await fc.assert(
    fc.asyncProperty(fc.string({ maxLength: 60 }), fc.constantFrom(...payloads('fc')), async (prefix, p) => {
      n += 1;
      const r = await s.exec(`${prefix}${p}`, { timeoutMs: 10_000 });
      expect(r.code).toBe(126);
    }),
    { numRuns: 80 },
  );
  rec.inputs(n);
  rec.fault(n);
  rec.check('no canary file created on the host', canaries().length === 0, canaries());
  const denied = h.allowlistLog().filter((e) => e.verdict === 'deny').length;
  rec.check('every hostile request logged as denied by the host', denied >= raw.length + 80, { denied });
  rec.check('the host is unchanged by the hostile requests', h.profileGeneration().storePath === gen.storePath);
  rec.note(`allowlist: ${n} hostile requests on a real host; ${denied} logged as denied; 0 canary files`);
  // A real evaluation and build per template payload: minutes on a loaded 2-core machine, not a hang.
}, 360_000);
