/**
 * Host and network faults on the real stack (dev server, sshd/Nix hosts behind the allowlist, GitHub
 * stand-in): a host killed mid-switch, a host whose link is cut mid-switch, a host unreachable before
 * its turn, a host whose rollback fails. Each is classified (failed / uncertain / rollback-failed), the
 * operator is told what is uncertain, a host is never rolled back on a guess (only to its recorded
 * generation, and only when it was reached), and no host is switched or rolled back twice (counted
 * from the hosts' own logs).
 */
import type { DeploymentStatus } from '../../src/domain/deployment';
import type { World } from '../../testkit/world';
import { recorder } from './figures';
import { startAllowlistedWorld, startInProcessWorker, type RunningWorker } from './harness';
import { profileMoves, revertCommits, startDeployment, waitPhase } from '../support/saga';
import { startTestTemporal, waitFor, type TestTemporal } from '../support/temporal';

const rec = recorder(__filename);
let t: TestTemporal;
const open: Array<{ world: World; worker: RunningWorker }> = [];
beforeAll(async () => {
  t = await startTestTemporal();
});
afterAll(async () => {
  for (const o of open) {
    await o.worker.stop().catch(() => undefined);
    await o.world.stop();
  }
  await t?.stop();
  rec.save();
});

const HOSTS = ['f1', 'f2', 'f3'];
async function scenario(title: string, arm: (w: World) => Promise<void> | void, during?: (w: World) => Promise<void>): Promise<{ w: World; s: DeploymentStatus }> {
  const w = await startAllowlistedWorld({ hosts: HOSTS.map((name) => ({ name, kind: 'nixos' as const })) });
  const worker = await startInProcessWorker(t, w, title);
  open.push({ world: w, worker });
  const pr = await w.openLockUpdate('v2');
  await arm(w);
  const handle = await startDeployment(t, w, worker.taskQueue, { pr: pr.number });
  if (during) await during(w);
  const s = await waitPhase(handle, ['awaiting-operator', 'closed'], 150_000);
  rec.run();
  rec.fault();
  // Common invariants, from the hosts' own logs.
  for (const h of HOSTS) {
    const m = profileMoves(w, h);
    rec.check(`${title}: ${h} switched at most once`, m.set <= 1, m);
    rec.check(`${title}: ${h} rolled back at most once`, m.switchGeneration <= 1, m);
  }
  rec.check(`${title}: at most one revert commit`, (await revertCommits(w, s.mergeSha as string)).length <= 1);
  rec.check(`${title}: f3 never attempted`, s.hosts.find((h) => h.name === 'f3')?.state === 'not-attempted' && profileMoves(w, 'f3').set === 0);
  rec.check(`${title}: f1 back on its recorded generation`, s.hosts[0]?.state === 'rolled-back' ? w.fleet.host('f1').profileGeneration().storePath === s.hosts[0]?.before?.storePath : true);
  return { w, s };
}
const f2 = (s: DeploymentStatus) => s.hosts.find((h) => h.name === 'f2');
const hung = (w: World) => waitFor('f2 to hang mid-activation', () => (w.fleet.host('f2').commandLog().some((e) => e.tool === 'hang') ? true : undefined), 60_000);

test('a host killed mid-switch (after its profile moved) is failed and uncertain; it is not rolled back while unreachable', async () => {
  const { w, s } = await scenario('killed', (x) => x.fleet.host('f2').hangActivation(true), async (x) => {
    await hung(x);
    await x.fleet.host('f2').kill();
  });
  const h = f2(s);
  rec.check('killed: f2 uncertain (the operator is told)', h?.uncertain !== undefined && /ConnectionLost|HostUnreachable/.test(h.uncertain), h);
  rec.check('killed: f2 not marked rolled back', h?.state !== 'rolled-back', h);
  rec.check('killed: f2 profile moved once, never rolled back', profileMoves(w, 'f2').set === 1 && profileMoves(w, 'f2').switchGeneration === 0);
  rec.check('killed: deployment failed, f1 rolled back', s.failedHost === 'f2' && s.hosts[0]?.state === 'rolled-back', s.hosts);
  rec.note(`killed mid-switch: f2 ${h?.state}, uncertain: ${h?.uncertain?.slice(0, 100)}`);
});

test('a host whose link is cut mid-switch is failed and uncertain; nothing is applied to it on a guess', async () => {
  const { w, s } = await scenario('cut-link', (x) => x.fleet.host('f2').hangActivation(true), async (x) => {
    await hung(x);
    await x.fleet.host('f2').cutLink();
  });
  const h = f2(s);
  rec.check('cut: f2 uncertain', h?.uncertain !== undefined, h);
  rec.check('cut: f2 never rolled back', profileMoves(w, 'f2').switchGeneration === 0);
  await w.fleet.host('f2').restoreLink();
  rec.note(`link cut mid-switch: f2 ${h?.state}, uncertain: ${h?.uncertain?.slice(0, 100)}`);
});

test('a host unreachable before its turn: failed as unreachable with nothing recorded, no rollback attempted on it', async () => {
  const { w, s } = await scenario('unreachable', async (x) => x.fleet.host('f2').kill());
  const h = f2(s);
  rec.check('unreachable: f2 failed, uncertain HostUnreachable', h?.state === 'failed' && /HostUnreachable/.test(h?.uncertain ?? ''), h);
  rec.check('unreachable: no generation recorded for f2 (so no rollback target is guessed)', h?.before === undefined, h);
  rec.check('unreachable: f2 untouched', profileMoves(w, 'f2').set === 0);
  rec.note(`unreachable before its turn: f2 ${h?.state}: ${h?.error?.slice(0, 100)}`);
});

test('a host whose rollback fails: rollback-failed with the reason, outcome incomplete, rolled back exactly once', async () => {
  const { w, s } = await scenario(
    'rollback-fails',
    (x) => x.fleet.host('f2').failActivation('units', { onlyVersion: 'v2' }),
    async (x) => {
      await waitFor('f1 to switch', () => (profileMoves(x, 'f1').activations >= 1 ? true : undefined), 60_000);
      // Every activation on f1 fails from now on, the rollback's included.
      x.fleet.host('f1').failActivation('script');
    },
  );
  const h1 = s.hosts[0];
  rec.check('rollback-fails: f1 rollback-failed with the reason', h1?.state === 'rollback-failed' && /rollback/.test(h1?.error ?? ''), h1);
  rec.check('rollback-fails: outcome says incomplete', s.outcome === 'failed-rollback-incomplete', s.outcome);
  rec.check('rollback-fails: f1 rolled back once (no retry of a failed activation)', profileMoves(w, 'f1').switchGeneration === 1, profileMoves(w, 'f1'));
  rec.check('rollback-fails: f2 rolled back', f2(s)?.state === 'rolled-back', f2(s));
  rec.note(`rollback fails: f1 ${h1?.state}: ${h1?.error?.slice(0, 120)}`);
});
