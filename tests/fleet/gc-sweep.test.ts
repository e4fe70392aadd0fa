/**
 * Issue 11 item 3, the sweep: GC roots and switch markers of deployments that no longer exist are
 * swept at record time, so a deployment whose close never reached a host (unreachable then, worker
 * gone) does not pin its store paths forever. Only entries older than the longest a deployment can
 * hold them (gcSweepAgeSeconds) and not the current deployment's go; a recent root of another
 * deployment (another fleet sharing the host, still open for its operator) stays.
 *
 * The real recordGeneration activity against allowlisted stand-in hosts (NixOS and Home Manager),
 * then the host's own garbage collector: a swept root's store path is collected, a kept one is not.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import pino from 'pino';
import { createActivities, type Activities } from '../../activities';
import { createGitHub } from '../../src/github';
import { gcRootName, listGenerations, pinStorePath, readGeneration, switchMarkerName, switchTo, writeSwitchMarker, type HostSession } from '../../src/hosts';
import { gcSweepAgeSeconds } from '../../src/domain/gc-roots';
import type { Generation, HostSpec } from '../../src/domain/deployment';
import { createFleetFlakeRepo, startFleet, type FleetFlakeRepo, type StandinFleet, type StandinHost } from '../../testkit/fleet';
import { recorder } from '../faults/figures';
import { connect } from './helpers';

const rec = recorder(__filename);
let fleet: StandinFleet;
let repo: FleetFlakeRepo;
let acts: Activities;
let closeActs: () => Promise<void>;
const sessions: HostSession[] = [];

beforeAll(async () => {
  fleet = await startFleet(
    [
      { name: 'w1', kind: 'nixos' },
      { name: 'w2', kind: 'home-manager' },
    ],
    { allowlist: true },
  );
  repo = await createFleetFlakeRepo(fleet.baseDir, ['w1', 'w2'], { version: 'v1' });
  const logger = pino({ level: 'silent' });
  const created = createActivities({
    github: createGitHub({ baseUrl: 'http://127.0.0.1:9', token: 'ghs_unused', log: logger }),
    ssh: { privateKey: fleet.clientPrivateKey, knownHosts: fleet.knownHosts, readyTimeoutMs: 5_000 },
    logger,
  });
  acts = created.activities;
  closeActs = created.close;
});
afterAll(async () => {
  for (const s of sessions) await s.close();
  await closeActs?.();
  await fleet?.stop();
  rec.save();
});

const spec = (h: StandinHost): HostSpec => ({ name: h.name, address: h.address, port: h.port, user: h.user, kind: h.kind, attr: h.name });
const rootDir = (h: StandinHost): string => (h.kind === 'nixos' ? path.join(h.dir, 'gcroots', 'nixfleet') : path.join(h.dir, 'home', '.local', 'state', 'nix', 'profiles', 'nixfleet-gcroots'));
const entries = (h: StandinHost): string[] => {
  const dir = rootDir(h);
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .flatMap((e) => (e === 'switches' ? fs.readdirSync(path.join(dir, e)).map((m) => `switches/${m}`) : [e]))
    .sort();
};
/** Ages an entry on the host (the link itself, not what it points to), as time would. */
const age = (h: StandinHost, rel: string, seconds: number): void => {
  const when = new Date(Date.now() - seconds * 1000);
  execFileSync('touch', ['-h', '-d', when.toISOString(), path.join(rootDir(h), rel)]);
};

test.each(['w1', 'w2'])('%s: record time sweeps roots and markers of deployments gone for longer than the bound; recent and current ones stay; GC then collects what only the swept roots held', async (name) => {
  const h = fleet.host(name);
  const s = await connect(fleet, h);
  sessions.push(s);
  const bound = gcSweepAgeSeconds();
  // An old deployment switched the host (v2) and its close never reached it: its roots and marker stay.
  await repo.updateLock({ version: `old-${name}` });
  const oldRef = repo.flakeRef(await repo.head());
  const start = await readGeneration(s, h.kind);
  const old = await switchTo(s, { name, kind: h.kind, attr: name }, { flakeRef: oldRef });
  expect(old.outcome).toBe('switched');
  const oldTarget = old.target as string;
  // Its recorded generation: an older one (the one the host runs now is also the booted system on
  // NixOS, which is a GC root of its own: /run/booted-system).
  const goneRecorded = (await listGenerations(s, start.profile)).find((g) => g.number < start.number) as Generation;
  expect(goneRecorded).toBeDefined();
  await pinStorePath(s, h.kind, start.profile, gcRootName('deploy-gone.fleet.pr1', 'recorded'), goneRecorded.storePath);
  await pinStorePath(s, h.kind, start.profile, gcRootName('deploy-gone.fleet.pr1', 'target'), oldTarget);
  await writeSwitchMarker(s, h.kind, start.profile, switchMarkerName('deploy-gone.fleet.pr1', 'runold'));
  // Another deployment, recent (another fleet's, awaiting its operator): must stay.
  await pinStorePath(s, h.kind, start.profile, gcRootName('deploy-other.fleet.pr7', 'target'), oldTarget);
  await writeSwitchMarker(s, h.kind, start.profile, switchMarkerName('deploy-other.fleet.pr7', 'runrecent'));
  // The current deployment's own marker from an earlier run, old: the current deployment's are never swept.
  await writeSwitchMarker(s, h.kind, start.profile, switchMarkerName('deploy-now.fleet.pr9', 'runearlier'));
  for (const e of ['deploy-gone.fleet.pr1-recorded', 'deploy-gone.fleet.pr1-target', 'switches/deploy-gone.fleet.pr1-runold', `switches/deploy-now.fleet.pr9-runearlier`]) age(h, e, bound + 3600);
  // Just inside the bound: stays.
  age(h, 'deploy-other.fleet.pr7-target', bound - 3600);
  // The host moves on (v3, the profile no longer on the old target), as it would.
  await repo.updateLock({ version: `new-${name}` });
  const cur = await switchTo(s, { name, kind: h.kind, attr: name }, { flakeRef: repo.flakeRef(await repo.head()) });
  expect(cur.outcome).toBe('switched');

  const env = new MockActivityEnvironment({ attempt: 1, workflowExecution: { workflowId: 'deploy-now.fleet.pr9', runId: 'runnow' } });
  const recorded: Generation = await env.run(acts.recordGeneration, { deploymentId: 'deploy-now.fleet.pr9', host: spec(h) });
  rec.run();
  expect(recorded.storePath).toBe(cur.after.storePath);
  const left = entries(h);
  rec.check(`${name}: the gone deployment's roots and marker are swept`, !left.some((e) => e.includes('deploy-gone')), left);
  rec.check(`${name}: a recent root and marker of another deployment stay`, left.includes('deploy-other.fleet.pr7-target') && left.includes('switches/deploy-other.fleet.pr7-runrecent'), left);
  rec.check(`${name}: the current deployment's roots and markers stay`, left.includes('deploy-now.fleet.pr9-recorded') && left.includes('switches/deploy-now.fleet.pr9-runearlier'), left);
  // Sweeping twice is harmless (the next record, a retry).
  await env.run(acts.recordGeneration, { deploymentId: 'deploy-now.fleet.pr9', host: spec(h) });
  expect(entries(h)).toEqual(left);
  // GC: the recorded store path of the gone deployment (no generation, no root left) is collected;
  // the old target, still pinned by the recent root of the other deployment, is not.
  const deleted = await h.collectGarbage();
  rec.check(`${name}: GC collects what only the swept roots held`, deleted.includes(goneRecorded.storePath), { deleted, goneRecorded: goneRecorded.storePath });
  rec.check(`${name}: GC keeps what a kept root holds`, !deleted.includes(oldTarget), { deleted, oldTarget });
  rec.check(`${name}: GC keeps the current deployment's recorded generation`, !deleted.includes(recorded.storePath));
  const verbs = new Set(h.allowlistLog().map((e) => e.verb));
  rec.check(`${name}: the sweep passes the allowlist`, verbs.has('gc-sweep') && !h.allowlistLog().some((e) => e.verdict === 'deny'), [...verbs]);
  rec.note(`gc sweep (${h.kind}): roots/markers older than ${Math.round(bound / 86400)} d of a gone deployment swept at record time, recent/current kept; GC then collected the swept root's store path only`);
});
