/**
 * Hosts build the fleet flake from git smart HTTP at a pinned rev (the GitHub stand-in's
 * git http-backend), as they would from GitHub.
 */
import { fleetFlakeFiles, fleetFlakeLock, startFleet } from '../../testkit/fleet';
import type { StandinFleet } from '../../testkit/fleet';
import { startGitHubStandin } from '../../testkit/github';
import type { GitHubStandin } from '../../testkit/github';
import { rollbackTo, switchTo } from '../../src/hosts';
import type { HostSession } from '../../src/hosts';
import { connect, figures, printFigures } from './helpers';

let fleet: StandinFleet;
let gh: GitHubStandin;
let s: HostSession | undefined;

beforeAll(async () => {
  gh = await startGitHubStandin();
  fleet = await startFleet([{ name: 'hsb0', kind: 'nixos' }]);
});
afterAll(async () => {
  await s?.close();
  await fleet?.stop();
  await gh?.stop();
  printFigures('git+http figures');
});

test('switchTo and rollbackTo with a git+http://…?rev= flake reference', async () => {
  const files = fleetFlakeFiles(['hsb0'], { version: 'v1' });
  await gh.createRepo('fleet', 'nix-config', { defaultBranch: 'main', files: { ...files } });
  const v2 = await gh.pushCommit('fleet', 'nix-config', 'main', { 'flake.lock': fleetFlakeLock({ version: 'v2' }) }, 'flake.lock: update');
  const ref = (rev: string) => `git+${gh.gitUrl('fleet', 'nix-config')}?ref=main&rev=${rev}`;
  const host = fleet.host('hsb0');
  s = await connect(fleet, host);
  const recorded = host.profileGeneration();
  const t0 = Date.now();
  const r = await switchTo(s, { name: 'hsb0', kind: 'nixos' }, { flakeRef: ref(v2) });
  figures['switchTo from git+http (fetch over smart HTTP + build + switch)'] = `${Date.now() - t0} ms`;
  expect(r.outcome).toBe('switched');
  expect(host.profileGeneration().storePath).toMatch(/-nixos-system-hsb0-v2$/);
  expect((await rollbackTo(s, { name: 'hsb0', kind: 'nixos' }, recorded)).outcome).toBe('rolled-back');
  expect(host.profileGeneration()).toEqual(recorded);
});
