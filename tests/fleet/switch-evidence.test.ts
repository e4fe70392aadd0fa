/**
 * "Reached the host" is not "switched" (issue 11, item 6): the superseded-target and exit-4-on-retry
 * checks of the switch activity key on evidence that this deployment's switch reached the profile step
 * on the host (a marker the switch writes there), not on an earlier attempt having opened a session.
 *
 * The real activities against real sshd hosts with real Nix profiles (the stand-in fleet, allowlist
 * on). A retry is run as Temporal runs it: an activity attempt whose heartbeat details are what the
 * earlier attempt heartbeated ({ connected: true }: it opened a session, then lost it).
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import pino from 'pino';
import { createActivities, type Activities } from '../../activities';
import { createGitHub } from '../../src/github';
import { createFleetFlakeRepo, startFleet, waitFor, type FleetFlakeRepo, type StandinFleet, type StandinHost } from '../../testkit/fleet';
import { HostBusyError, rollbackTo, switchMarkerName, switchTo, type HostSession, type HostTarget } from '../../src/hosts';
import type { HostSpec } from '../../src/domain/deployment';
import type { SwitchFailedDetails, SwitchHostResult } from '../../src/domain/activities';
import { connect, processesMentioning } from './helpers';

let fleet: StandinFleet;
let repo: FleetFlakeRepo;
let flakeRef: string;
let acts: Activities;
let closeActs: () => Promise<void>;
const sessions: HostSession[] = [];

const NAMES = ['e1', 'e2', 'e3', 'e4', 'e5', 'e6', 'e7', 'm8'];
const kindOf = (name: string): 'nixos' | 'home-manager' => (name.startsWith('m') ? 'home-manager' : 'nixos');

async function session(h: StandinHost): Promise<HostSession> {
  const s = await connect(fleet, h);
  sessions.push(s);
  return s;
}
const target = (h: StandinHost): HostTarget => ({ name: h.name, kind: h.kind, attr: h.name });
const spec = (h: StandinHost): HostSpec => ({ name: h.name, address: h.address, port: h.port, user: h.user, kind: h.kind, attr: h.name });
const onStorePath = (h: StandinHost, storePath: string) => h.profileGeneration().storePath === storePath && h.currentSystem() === storePath;

/** One attempt of the switch activity of a deployment run; `retryAfterSession`: an earlier attempt opened a session. */
function switchAttempt(h: StandinHost, deploymentId: string, runId: string, before: { number: number; storePath: string }, retryAfterSession: boolean): Promise<SwitchHostResult> {
  const env = new MockActivityEnvironment({
    attempt: retryAfterSession ? 2 : 1,
    heartbeatDetails: retryAfterSession ? { connected: true } : undefined,
    workflowExecution: { workflowId: deploymentId, runId },
  });
  return env.run(acts.switchHost, { deploymentId, host: spec(h), flakeRef, before });
}

async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ApplicationFailure) return err;
    throw err;
  }
  throw new Error('expected the attempt to fail');
}

beforeAll(async () => {
  process.env.NIXFLEET_STANDIN_ALLOWLIST = '1';
  try {
    fleet = await startFleet(NAMES.map((name) => ({ name, kind: kindOf(name) })));
  } finally {
    delete process.env.NIXFLEET_STANDIN_ALLOWLIST;
  }
  repo = await createFleetFlakeRepo(fleet.baseDir, NAMES, { version: 'v1' });
  await repo.updateLock({ version: 'v2' });
  flakeRef = repo.flakeRef(await repo.head());
  const logger = pino({ level: 'silent' });
  const created = createActivities({
    // Not used by the switch activity (it never calls GitHub).
    github: createGitHub({ baseUrl: 'http://127.0.0.1:9', token: 'ghs_unused', log: logger }),
    ssh: { privateKey: fleet.clientPrivateKey, knownHosts: fleet.knownHosts, readyTimeoutMs: 5_000, keepaliveIntervalMs: 1_000, keepaliveCountMax: 3 },
    logger,
    heartbeatMs: 1_000,
  });
  acts = created.activities;
  closeActs = created.close;
});

afterAll(async () => {
  for (const s of sessions) await s.close();
  await closeActs?.();
  await fleet?.stop();
});

test('re-deploying a target the host was once rolled back from: a retry after a connection lost during the build switches normally', async () => {
  const h = fleet.host('e1');
  const s = await session(h);
  const recorded = h.profileGeneration();
  // An earlier deployment switched e1 to the target, and e1 was rolled back from it.
  const first = await switchTo(s, target(h), { flakeRef });
  expect(first.outcome).toBe('switched');
  const tgt = first.target as string;
  expect((await rollbackTo(s, target(h), recorded)).outcome).toBe('rolled-back');
  expect(h.generations().some((g) => g.storePath === tgt && g.number > recorded.number)).toBe(true);
  // A new deployment of the same target (allowQuarantined): its first attempt opened a session and lost
  // it during the build (nothing moved); the retry must switch, not report "superseded".
  const again = await switchAttempt(h, 'redeploy-e1', 'run-redeploy-1', recorded, true);
  expect(again.storePath).toBe(tgt);
  expect(onStorePath(h, tgt)).toBe(true);
});

test('a host already on the target with a unit that failed before the deployment is not reported failed on a retry', async () => {
  const h = fleet.host('e2');
  const s = await session(h);
  const sw = await switchTo(s, target(h), { flakeRef });
  expect(sw.outcome).toBe('switched');
  const tgt = sw.target as string;
  const before = h.profileGeneration();
  // A unit failed on the host long before this deployment.
  h.setFailedUnits(['backup.service']);
  const r = await switchAttempt(h, 'deploy-e2', 'run-e2-1', before, true);
  expect(r.storePath).toBe(tgt);
  expect(onStorePath(h, tgt)).toBe(true);
  h.setFailedUnits([]);
});

test('a retry after an attempt that reached the profile step still refuses to switch a host rolled back since (superseded)', async () => {
  const h = fleet.host('e3');
  const s = await session(h);
  const recorded = h.profileGeneration();
  // Attempt 1 of this run switches (and writes its marker); the host is then rolled back (by itself).
  const a1 = await switchAttempt(h, 'deploy-e3', 'run-e3-1', recorded, false);
  expect(h.profileGeneration().storePath).toBe(a1.storePath);
  expect((await rollbackTo(s, target(h), recorded)).outcome).toBe('rolled-back');
  const f = await failureOf(switchAttempt(h, 'deploy-e3', 'run-e3-1', recorded, true));
  expect((f.details?.[0] as SwitchFailedDetails).superseded).toBe(true);
  expect(onStorePath(h, recorded.storePath)).toBe(true);
  // Another run of the deployment (no marker of its own) is a deliberate switch.
  const other = await switchAttempt(h, 'deploy-e3', 'run-e3-2', recorded, true);
  expect(other.storePath).toBe(a1.storePath);
});

test('a retry after an activation that reached the profile step and ended with exit 4 (reply lost) still reports the exit 4', async () => {
  const h = fleet.host('e4');
  const s = await session(h);
  const before = h.profileGeneration();
  h.failActivation('units');
  // The first attempt, as the activity runs it (same marker); its reply never arrives.
  const lost = await switchTo(s, target(h), { flakeRef, recorded: before, marker: switchMarkerName('deploy-e4', 'run-e4-1') });
  expect(lost.outcome).toBe('failed');
  h.failActivation(false);
  const f = await failureOf(switchAttempt(h, 'deploy-e4', 'run-e4-1', before, true));
  const d = f.details?.[0] as SwitchFailedDetails;
  expect(d.exitCode).toBe(4);
  expect(d.failedUnits).toBe(true);
  expect(f.message).toMatch(/found on a retry/);
});

test('an activation that outlives its attempt (connection lost while it runs) is not started a second time while the first still runs', async () => {
  const h = fleet.host('e5');
  const s = await session(h);
  const before = h.profileGeneration();
  const started = () => h.activations().filter((e) => e.args[0] === 'switch').length;
  const n0 = started();
  h.hangActivation(true);
  const first = switchTo(s, target(h), { flakeRef }).then(
    () => 'returned',
    (err: unknown) => err,
  );
  try {
    await waitFor('the first activation to hang', () => h.commandLog().some((e) => e.tool === 'hang'), { timeoutMs: 60_000 });
    // The link drops: the first attempt loses its connection; its activation keeps running on the host.
    await h.cutLink();
    const lost = await first;
    expect(lost).toBeInstanceOf(Error);
    await h.restoreLink();
    expect(started()).toBe(n0 + 1);
    expect(h.profileGeneration().storePath).not.toBe(before.storePath);
    // The retry finds the profile on the target, not activated: it must not activate again now.
    const retry = await session(h);
    let err: unknown;
    try {
      await switchTo(retry, target(h), { flakeRef, activateTimeoutMs: 10_000 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(HostBusyError);
    expect(started()).toBe(n0 + 1);
    // The first activation is released (its SSH session is gone, so it may die of SIGPIPE before it
    // finishes, as on a real host); a retry waits for the lock and then completes the switch.
    h.hangActivation(false);
    const tgt = h.profileGeneration().storePath;
    const released = await waitFor('the first activation to be released', () => h.commandLog().find((e) => e.tool === 'hang-released'), { timeoutMs: 60_000 });
    const done = await waitFor(
      'a retry to complete the switch',
      async () => {
        try {
          return await switchTo(retry, target(h), { flakeRef });
        } catch (e) {
          if (e instanceof HostBusyError) return undefined;
          throw e;
        }
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    expect(['switched', 'already-on-target']).toContain(done.outcome);
    expect(onStorePath(h, tgt)).toBe(true);
    // Never two at once: any second activation started after the first was released.
    const starts = h.activations().filter((e) => e.args[0] === 'switch').slice(n0);
    expect(starts.length).toBeLessThanOrEqual(2);
    if (starts[1]) expect(starts[1].atMs).toBeGreaterThanOrEqual(released.atMs);
  } finally {
    h.hangActivation(false);
    await h.restoreLink();
  }
});

test('a cancelled switch stops its remote activation (KILL): it never completes later, and the lock is free for the rollback', async () => {
  const h = fleet.host('e6');
  const before = h.profileGeneration();
  h.hangActivation(true);
  const env = new MockActivityEnvironment({ attempt: 1, workflowExecution: { workflowId: 'deploy-e6', runId: 'run-e6-1' } });
  let settled: unknown;
  const p = env.run(acts.switchHost, { deploymentId: 'deploy-e6', host: spec(h), flakeRef, before }).then(
    () => (settled = 'returned'),
    (err: unknown) => (settled = err),
  );
  try {
    await waitFor('the activation to hang', () => h.commandLog().some((e) => e.tool === 'hang'), { timeoutMs: 60_000 });
    expect(processesMentioning('nixos-system-e6-').length).toBeGreaterThan(0);
    env.cancel();
    await waitFor('the cancelled activity to end', () => settled !== undefined, { timeoutMs: 30_000 });
    await p;
    expect(settled).toBeInstanceOf(CancelledFailure);
    // The remote activation was stopped, not left to activate later.
    await waitFor('the remote activation to be gone', () => processesMentioning('nixos-system-e6-').length === 0, { timeoutMs: 30_000 });
    h.hangActivation(false);
    expect(h.commandLog().some((e) => e.tool === 'hang-released')).toBe(false);
    expect(h.currentSystem()).toBe(before.storePath);
    // The profile had moved: the way back runs (the activation lock is free).
    const s = await session(h);
    expect((await rollbackTo(s, target(h), before)).outcome).toBe('rolled-back');
    expect(onStorePath(h, before.storePath)).toBe(true);
  } finally {
    h.hangActivation(false);
  }
});

/**
 * The lock covers every activation the product starts: Home Manager's (home-manager switch, a resumed
 * or rollback `activate`) and the confirmed activation that runs as a transient unit (systemd-run
 * --wait), whose process the SSH session does not own. The first attempt's activation hangs and its
 * link is cut; the retry must be HostBusy and start nothing while the first still runs.
 */
test.each([
  ['m8', 'a Home Manager activation', {}],
  ['e7', 'a confirmed activation (a transient unit)', { confirm: true }],
] as const)('%s: %s that outlives its attempt is not started a second time while the first still runs', async (name, _what, o) => {
  const h = fleet.host(name);
  const s = await session(h);
  const before = h.profileGeneration();
  const activating = () => h.commandLog().filter((e) => e.tool === 'hang').length;
  const n0 = activating();
  const confirm = 'confirm' in o ? { confirm: { unit: `nixfleet-rollback-deploy-${name}-run1`, timeoutSeconds: 600, rollbackTo: before } } : {};
  h.hangActivation(true);
  const first = switchTo(s, target(h), { flakeRef, ...confirm }).then(
    () => 'returned',
    (err: unknown) => err,
  );
  try {
    await waitFor('the first activation to hang', () => activating() > n0, { timeoutMs: 60_000 });
    await h.cutLink();
    expect(await first).toBeInstanceOf(Error);
    await h.restoreLink();
    expect(h.profileGeneration().storePath).not.toBe(before.storePath);
    const retry = await session(h);
    let err: unknown;
    try {
      await switchTo(retry, target(h), { flakeRef, activateTimeoutMs: 10_000, ...confirm });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(HostBusyError);
    expect(activating()).toBe(n0 + 1);
  } finally {
    h.hangActivation(false);
    await h.restoreLink();
  }
  // Released (or gone with its session), the lock is free: the way back runs.
  const s2 = await session(h);
  const back = await waitFor(
    'the rollback once the first activation is gone',
    async () => {
      try {
        return await rollbackTo(s2, target(h), before);
      } catch (e) {
        if (e instanceof HostBusyError) return undefined;
        throw e;
      }
    },
    { timeoutMs: 60_000, intervalMs: 300 },
  );
  expect(['rolled-back', 'already-at-recorded']).toContain(back.outcome);
  expect(onStorePath(h, before.storePath)).toBe(true);
});
