/**
 * Bounded and cancellable remote work (issue 11, item 7) on the real stack: the Temporal dev server,
 * the stand-in hosts behind the allowlist, the GitHub stand-in, a worker with the real activities.
 *
 * - An operator cancels a deployment while two hosts build at once (maxParallel: 2): the builds are
 *   stopped on the hosts (sshd does not signal the allowlist's forced command: they are stopped by
 *   their lock), no host switches after the cancel; every in-flight host is accounted for (none left
 *   "switching"), and every host that moved is rolled back.
 * - A build that outlives the fleet's build timeout is stopped on the host and reported as "build
 *   timed out", once (not retried as a lost connection).
 * - An activation outlives its timeout (the fleet's activation timeout is short, the link is cut
 *   while the activation runs, so the activity cannot stop it): the retries are refused by the host's
 *   activation lock while the first still runs; no second activation starts until it is gone.
 */
import { WorkflowFailedError } from '@temporalio/client';
import type { World } from '../../testkit/world';
import { statusQuery } from '../../workflows/messages';
import { HEARTBEAT_TIMEOUT_MS } from '../../src/domain/host-timeouts';
import { recorder } from './figures';
import { startAllowlistedWorld, startInProcessWorker, type RunningWorker } from './harness';
import { liveStatus, profileMoves, startDeployment, waitPhase } from '../support/saga';
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

const log = (w: World, h: string, tool: string) => w.fleet.host(h).commandLog().filter((e) => e.tool === tool);

test('an operator cancel mid-build with maxParallel 2: no host switches after the cancel; every in-flight host is accounted for and the host that moved is rolled back', async () => {
  const names = ['c1', 'c2', 'c3', 'c4'];
  const w = await startAllowlistedWorld({ hosts: names.map((name) => ({ name, kind: 'nixos' as const })) });
  const worker = await startInProcessWorker(t, w, 'cancel-mid-build');
  open.push({ world: w, worker });
  const before = Object.fromEntries(names.map((n) => [n, w.fleet.host(n).profileGeneration()]));
  const pr = await w.openLockUpdate('v2');
  // c1 builds at once and switches; c2 (beside it) and c3 (after c1) build for as long as it takes.
  w.fleet.host('c2').hangBuild(true);
  w.fleet.host('c3').hangBuild(true);
  const handle = await startDeployment(t, w, worker.taskQueue, { pr: pr.number, rollout: { waves: [{ name: 'all', hosts: names, maxParallel: 2 }] } });
  try {
    await waitFor('c2 and c3 to be building at once', () => (log(w, 'c2', 'hang-build').length > 0 && log(w, 'c3', 'hang-build').length > 0 ? true : undefined), 90_000);
    // A long build heartbeats: c2's switch attempt outlives the heartbeat timeout while it builds,
    // heartbeating, and is never timed out and started again (one build request on the host).
    const wave = t.client.workflow.getHandle(`${handle.workflowId}-wave-1`);
    const c2Switch = async () => (await wave.describe()).raw.pendingActivities?.find((a) => a.activityId?.endsWith('c2/switch'));
    const startedAt = Number((await waitFor('c2\'s switch to be running', async () => (await c2Switch())?.lastStartedTime ?? undefined, 30_000)).seconds) * 1000;
    const hb = await waitFor(
      'c2\'s switch to heartbeat past the heartbeat timeout',
      async () => {
        const a = await c2Switch();
        const last = a?.lastHeartbeatTime ? Number(a.lastHeartbeatTime.seconds) * 1000 : 0;
        return a && last - startedAt > HEARTBEAT_TIMEOUT_MS ? a : undefined;
      },
      HEARTBEAT_TIMEOUT_MS + 30_000,
      500,
    );
    rec.check('cancel: the long build heartbeats (first attempt, one build on the host, past the heartbeat timeout)', hb.attempt === 1 && log(w, 'c2', 'hang-build').length === 1, { attempt: hb.attempt });
    const mid = await liveStatus(t, handle);
    rec.check('cancel: c1 switched before the cancel', mid.hosts.find((h) => h.name === 'c1')?.state === 'switched', mid.hosts);
    rec.check('cancel: c2 and c3 in flight at the cancel', ['c2', 'c3'].every((n) => mid.hosts.find((h) => h.name === n)?.state === 'switching'), mid.hosts);
    await handle.cancel();
    rec.fault();
    const err = await handle.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    rec.run();
    rec.check('cancel: the deployment ends cancelled', err instanceof WorkflowFailedError, String(err));
    // The cancelled builds are stopped on the hosts, not left to run (and finish) after the cancel.
    const running = await waitFor('the cancelled builds to be stopped on c2 and c3', async () => ((await w.fleet.host('c2').hungBuilds()) + (await w.fleet.host('c3').hungBuilds()) === 0 ? 0 : undefined), 30_000).catch(
      async () => (await w.fleet.host('c2').hungBuilds()) + (await w.fleet.host('c3').hungBuilds()),
    );
    rec.check('cancel: the builds in flight are stopped on the hosts (by their lock)', running === 0 && ['c2', 'c3'].every((n) => w.fleet.host(n).allowlistLog().some((e) => e.verb === 'stop-build' && e.verdict === 'allow')), { running });
  } finally {
    // Cleanup: a build still held (the check above failed) is released now and would log it.
    w.fleet.host('c2').hangBuild(false);
    w.fleet.host('c3').hangBuild(false);
  }
  rec.check('cancel: no cancelled build ran on to its end', ['c2', 'c3'].every((n) => log(w, n, 'hang-build-released').length === 0), { c2: log(w, 'c2', 'hang-build-released').length, c3: log(w, 'c3', 'hang-build-released').length });
  const s = await handle.query(statusQuery);
  const state = (n: string) => s.hosts.find((h) => h.name === n)?.state;
  rec.check('cancel: no host left switching (every in-flight host accounted for)', !s.hosts.some((h) => h.state === 'switching' || h.state === 'rolling-back'), s.hosts);
  rec.check('cancel: c2 and c3 never switched (no profile move, no activation)', ['c2', 'c3'].every((n) => profileMoves(w, n).set === 0 && profileMoves(w, n).activations === 0), { c2: profileMoves(w, 'c2'), c3: profileMoves(w, 'c3') });
  // Read after the cancel and found unchanged: rolled back (a no-op) by the compensation, or, when the
  // wave reports by its result (src/domain/wave-recovery.ts), not attempted with the reading as warning.
  const unchanged = (n: string) => state(n) === 'rolled-back' || (state(n) === 'not-attempted' && /still on generation \d+/.test(s.hosts.find((h) => h.name === n)?.warning ?? ''));
  rec.check('cancel: c2 and c3 are accounted for (read after the cancel and found unchanged)', ['c2', 'c3'].every(unchanged), s.hosts);
  rec.check('cancel: c1 (moved) rolled back to its recorded generation', state('c1') === 'rolled-back' && w.fleet.host('c1').profileGeneration().storePath === before.c1?.storePath && w.fleet.host('c1').currentSystem() === before.c1?.storePath, s.hosts);
  rec.check('cancel: c4 never attempted', state('c4') === 'not-attempted' && profileMoves(w, 'c4').set === 0, s.hosts);
  for (const n of ['c2', 'c3']) rec.check(`cancel: ${n} on its recorded generation`, w.fleet.host(n).profileGeneration().storePath === before[n]?.storePath);
  rec.check('cancel: nothing the allowlist refused', names.every((n) => !w.fleet.host(n).allowlistLog().some((e) => e.verdict === 'deny')));
  rec.note(`operator cancel mid-build (maxParallel 2): c2, c3 in flight → ${state('c2')}, ${state('c3')} (never switched, builds stopped on the hosts); c1 ${state('c1')}; c4 ${state('c4')}`);
}, 240_000);

test('a build that outlives the fleet\'s build timeout is stopped on the host and reported as timed out, once', async () => {
  const w = await startAllowlistedWorld({ hosts: [{ name: 'b1', kind: 'nixos' }, { name: 'b2', kind: 'nixos' }] });
  const worker = await startInProcessWorker(t, w, 'build-timeout');
  open.push({ world: w, worker });
  const h = w.fleet.host('b1');
  const before = h.profileGeneration();
  const pr = await w.openLockUpdate('v2');
  h.hangBuild(true);
  let s;
  try {
    const handle = await startDeployment(t, w, worker.taskQueue, { pr: pr.number, order: ['b1', 'b2'], timeouts: { build: '3s' } });
    s = await waitPhase(handle, ['awaiting-operator', 'closed'], 120_000);
    rec.fault();
    const hungAfter = await waitFor('b1\'s build to be stopped', async () => ((await h.hungBuilds()) === 0 ? 0 : undefined), 30_000).catch(() => h.hungBuilds());
    rec.check('timeout: the build is stopped on the host (by its lock)', hungAfter === 0 && h.allowlistLog().some((e) => e.verb === 'stop-build' && e.verdict === 'allow'), { hungAfter });
  } finally {
    h.hangBuild(false);
  }
  rec.run();
  const b1 = s.hosts.find((x) => x.name === 'b1');
  rec.check('timeout: b1 failed with "build timed out"', b1?.state !== 'switched' && /build timed out/.test(b1?.error ?? ''), b1);
  rec.check('timeout: one build on the host (not retried as a lost connection)', log(w, 'b1', 'hang-build').length === 1, { builds: log(w, 'b1', 'hang-build').length });
  rec.check('timeout: the build never ran on to its end', log(w, 'b1', 'hang-build-released').length === 0);
  rec.check('timeout: b1 unchanged, b2 not attempted', profileMoves(w, 'b1').set === 0 && h.profileGeneration().storePath === before.storePath && profileMoves(w, 'b2').set === 0, { b1: profileMoves(w, 'b1'), b2: profileMoves(w, 'b2') });
  rec.note(`build outliving its 3 s timeout: b1 ${b1?.state} ("${(b1?.error ?? '').slice(0, 80)}"), ${log(w, 'b1', 'hang-build').length} build started`);
}, 180_000);

test('an activation that outlives its timeout (link cut while it runs) is not started a second time while the first still runs', async () => {
  const w = await startAllowlistedWorld({ hosts: [{ name: 'd1', kind: 'nixos' }] });
  const worker = await startInProcessWorker(t, w, 'activation-outlives-timeout');
  open.push({ world: w, worker });
  const h = w.fleet.host('d1');
  const pr = await w.openLockUpdate('v2');
  h.hangActivation(true);
  const started = () => log(w, 'd1', 'hang').length;
  const tried = () => h.allowlistLog().filter((e) => e.verb === 'switch-to-configuration' && e.verdict === 'allow').length;
  const handle = await startDeployment(t, w, worker.taskQueue, { pr: pr.number, timeouts: { activation: '3s' } });
  let released = false;
  try {
    await waitFor('the activation to hang', () => (started() > 0 ? true : undefined), 90_000);
    // The link goes: the activity can neither hear back nor stop the activation by its lock.
    await h.cutLink();
    rec.fault();
    const wave = t.client.workflow.getHandle(`${handle.workflowId}-wave-1`);
    await waitFor('the switch activity to try again', async () => ((await wave.describe()).raw.pendingActivities?.some((a) => (a.attempt ?? 0) >= 2) ? true : undefined), 60_000);
    await h.restoreLink();
    // Retries reach the host and are refused by the lock the first activation still holds.
    await waitFor('a retry to reach the activation lock', () => (tried() >= 2 ? true : undefined), 60_000);
    rec.check('outlives: no second activation started while the first runs', started() === 1, { started: started(), tried: tried() });
    h.hangActivation(false);
    released = true;
  } finally {
    if (!released) h.hangActivation(false);
    await h.restoreLink();
  }
  const s = await waitPhase(handle, ['succeeded', 'awaiting-operator', 'closed'], 150_000);
  rec.run();
  const starts = h.activations().filter((e) => e.args[0] === 'switch');
  const releasedAt = log(w, 'd1', 'hang-released')[0]?.atMs;
  rec.check('outlives: any later activation started after the first was released', starts.slice(1).every((e) => releasedAt !== undefined && e.atMs >= releasedAt), { starts, releasedAt });
  rec.check('outlives: the host ends on a generation the deployment reports', s.hosts[0]?.state === 'switched' ? h.currentSystem() === s.hosts[0]?.after?.storePath : h.currentSystem() === s.hosts[0]?.before?.storePath, s.hosts);
  rec.check('outlives: nothing the allowlist refused', !h.allowlistLog().some((e) => e.verdict === 'deny'));
  rec.note(`activation outliving its 3 s timeout (link cut): ${tried()} locked activation requests, ${started()} activation${started() === 1 ? '' : 's'} started while it ran; d1 ${s.hosts[0]?.state}`);
});
