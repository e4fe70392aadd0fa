/**
 * The stand-in's reboots are as strict as a NixOS host's (testkit/fleet): `systemctl reboot` returns,
 * then the host goes down (the connection drops), is unreachable for a while, and boots its boot
 * default with a new boot id and /run/booted-system = /run/current-system = what booted. Faults: a host
 * that never comes back, and one that boots the previous system instead of the boot default. Driven
 * by the product's own host operations (src/hosts/reboot.ts) through the allowlist.
 */
import { buildTarget } from '../../src/hosts/operations';
import { readGeneration, type HostSession } from '../../src/hosts';
import { bootInto, bootRecorded, readBootState, requestReboot } from '../../src/hosts/reboot';
import { needsReboot } from '../../src/domain/reboot';
import { createFleetFlakeRepo, startFleet, waitFor, type FleetFlakeRepo, type StandinFleet, type StandinHost } from '../../testkit/fleet';
import { connect } from './helpers';

jest.setTimeout(120_000);
let fleet: StandinFleet;
let repo: FleetFlakeRepo;

beforeAll(async () => {
  fleet = await startFleet([{ name: 'r1', kind: 'nixos' }, { name: 'r2', kind: 'nixos' }, { name: 'r3', kind: 'nixos' }], { allowlist: true });
  repo = await createFleetFlakeRepo(fleet.baseDir, ['r1', 'r2', 'r3'], { version: 'v1' });
});
afterAll(async () => {
  await fleet?.stop();
});

async function built(h: StandinHost, s: HostSession, lock: { version: string; kernel?: string }): Promise<string> {
  const flakeRef = repo.flakeRef(await repo.updateLock(lock));
  const b = await buildTarget(s, { name: h.name, kind: 'nixos', attr: h.name }, { flakeRef });
  if (b.outcome !== 'built') throw new Error(`build failed: ${JSON.stringify(b)}`);
  return b.target;
}

/** Reconnects until the host answers (it is down while it reboots). */
async function whenBack(h: StandinHost): Promise<HostSession> {
  return waitFor(`${h.name} back`, () => connect(fleet, h, { readyTimeoutMs: 2000 }), { timeoutMs: 30_000, intervalMs: 200, retryErrors: true });
}

test('when the kernel changes, the boot state says a reboot is needed; the reboot drops the connection, the host is down, then boots the boot default with a new boot id', async () => {
  const h = fleet.host('r1');
  const s = await connect(fleet, h);
  const same = await built(h, s, { version: 'v2' });
  const st0 = await readBootState(s, same);
  expect(st0.bootedSystem).toBe(h.bootedSystem());
  expect(st0.bootId).toBe(h.bootId());
  // Seeded generations boot the flake's default kernel: an update that keeps it needs no reboot.
  expect(needsReboot(st0.booted, st0.target)).toEqual({ needed: false });
  const newKernel = await built(h, s, { version: 'v3', kernel: '6.7.1' });
  const st = await readBootState(s, newKernel);
  expect(needsReboot(st.booted, st.target)).toEqual({ needed: true, differs: ['kernel', 'initrd', 'kernelModules'], unknown: false });

  const before = await readGeneration(s, 'nixos');
  const after = await bootInto(s, newKernel);
  expect(after.storePath).toBe(newKernel);
  expect(h.bootDefault()?.storePath).toBe(newKernel);
  expect(h.currentSystem()).toBe(before.currentSystem); // boot: nothing activated now
  // Run twice: the profile does not move again.
  expect((await bootInto(s, newKernel)).number).toBe(after.number);

  const r = await requestReboot(s, st.bootId).catch((e: Error) => e.name);
  expect(['requested', 'ConnectionLostError']).toContain(r);
  // The connection drops: the session's next command fails.
  await waitFor('the session to drop', () => s.exec('true').then(() => false, () => true), { timeoutMs: 10_000, intervalMs: 50 });
  await s.close();
  const back = await whenBack(h);
  const st2 = await readBootState(back, newKernel);
  expect(st2.bootId).not.toBe(st.bootId);
  expect(st2.bootedSystem).toBe(newKernel);
  expect(st2.currentSystem).toBe(newKernel);
  expect(needsReboot(st2.booted, st2.target).needed).toBe(false);
  expect(h.reboots).toBe(1);
  // A retried reboot request of the old boot does not reboot again.
  expect(await requestReboot(back, st.bootId)).toBe('already-rebooted');
  expect(h.running).toBe(true);
  expect(h.reboots).toBe(1);
  await back.close();
});

test('when the next boot goes to the wrong generation, the host boots the system that booted before; the recorded generation is made the boot default again', async () => {
  const h = fleet.host('r2');
  const s = await connect(fleet, h);
  const recorded = await readGeneration(s, 'nixos');
  const t = await built(h, s, { version: 'v4', kernel: '6.8.0' });
  await bootInto(s, t);
  const { bootId } = await readBootState(s, t);
  h.failNextBoot('wrong-generation');
  await requestReboot(s, bootId).catch(() => undefined);
  await s.close();
  await waitFor('r2 to go down', () => h.reboots === 1, { timeoutMs: 10_000 });
  const back = await whenBack(h);
  const st = await readBootState(back, t);
  expect(st.bootId).not.toBe(bootId);
  expect(st.bootedSystem).toBe(recorded.storePath);
  expect(st.currentSystem).toBe(recorded.storePath);
  // Back to the recorded generation as the boot default (twice: no second profile move).
  const g = await bootRecorded(back, recorded);
  expect(g).toMatchObject({ number: recorded.number, storePath: recorded.storePath });
  expect(h.bootDefault()).toEqual({ number: recorded.number, storePath: recorded.storePath });
  expect((await bootRecorded(back, recorded)).number).toBe(recorded.number);
  await back.close();
});

test('when a host never comes back from its reboot, it stays unreachable until it is powered on', async () => {
  const h = fleet.host('r3');
  const s = await connect(fleet, h);
  const t = await built(h, s, { version: 'v5' });
  const { bootId } = await readBootState(s, t);
  h.failNextBoot('never-comes-back');
  await requestReboot(s, bootId).catch(() => undefined);
  await s.close();
  await waitFor('r3 to go down', () => h.reboots === 1 && !h.running, { timeoutMs: 10_000 });
  // Several connection attempts over longer than a stand-in reboot takes: all refused.
  const t0 = Date.now();
  let attempts = 0;
  while (Date.now() - t0 < h.rebootDownMs * 3) {
    attempts += 1;
    await expect(connect(fleet, h, { readyTimeoutMs: 1000 })).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 200));
  }
  expect(attempts).toBeGreaterThan(2);
  await h.restart();
  const back = await whenBack(h);
  expect((await readBootState(back, t)).bootId).not.toBe(bootId);
  await back.close();
});
