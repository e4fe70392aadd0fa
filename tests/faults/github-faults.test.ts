/**
 * GitHub faults on the real stack (dev server, sshd/Nix hosts behind the allowlist, the git-backed
 * GitHub stand-in): a failing deployment whose revert meets a burst of 5xx (on POST git/commits, on
 * PATCH git/refs), a 403 rate limit (retry-after; x-ratelimit-reset only), a push racing the revert, a
 * protected branch, a flake.lock edited after the merge; and a merge that meets a 5xx then succeeds.
 * Each time the right outcome, and no duplicate commits or pull requests (counted on the stand-in:
 * its request log, the branch's history and its pull requests).
 */
import type { DeploymentStatus } from '../../src/domain/deployment';
import { fleetFlakeLock } from '../../testkit/fleet';
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

interface Run {
  w: World;
  s: DeploymentStatus;
  /** Requests to this repository's API, as the stand-in logged them. */
  count(method: string, tail: string): number;
  /** Statuses of the requests to `method tail`, in order. */
  statuses(method: string, tail: string): number[];
}

/**
 * One deployment on a fresh world of one NixOS host; `failing` (default) makes its activation of the
 * update fail, so the deployment halts and compensates (revert, then roll the host back).
 */
async function deploy(title: string, arm: (w: World) => Promise<void> | void, opts: { failing?: boolean; during?: (w: World) => Promise<void> } = {}): Promise<Run> {
  const w = await startAllowlistedWorld({ hosts: [{ name: 'g1', kind: 'nixos' }] });
  const worker = await startInProcessWorker(t, w, title);
  open.push({ world: w, worker });
  const pr = await w.openLockUpdate('v2');
  if (opts.failing !== false) w.fleet.host('g1').failActivation('units', { onlyVersion: 'v2' });
  await arm(w);
  const handle = await startDeployment(t, w, worker.taskQueue, { pr: pr.number });
  if (opts.during) await opts.during(w);
  const s = await waitPhase(handle, ['awaiting-operator', 'closed', 'succeeded'], 150_000);
  rec.run();
  const api = `/repos/${w.owner}/${w.repo}`;
  const matching = (method: string, tail: string) => w.github.requests.filter((r) => r.method === method && r.path === `${api}${tail}`);
  const run: Run = { w, s, count: (m, tail) => matching(m, tail).length, statuses: (m, tail) => matching(m, tail).map((r) => r.status) };
  // Common invariants: every request and reply matched GitHub's OpenAPI description; one merge.
  rec.check(`${title}: requests and replies match GitHub's OpenAPI description`, w.github.validationFailures.length === 0, w.github.validationFailures.slice(0, 2));
  const merges = (await w.github.log(w.owner, w.repo, w.branch, 100)).filter((c) => c.parents.length === 2);
  rec.check(`${title}: exactly one merge commit on the branch`, merges.length === 1, merges.map((c) => c.subject));
  if (opts.failing !== false) {
    rec.check(`${title}: g1 rolled back once, switched once`, s.hosts[0]?.state === 'rolled-back' && profileMoves(w, 'g1').set === 1 && profileMoves(w, 'g1').switchGeneration === 1, { host: s.hosts[0], moves: profileMoves(w, 'g1') });
  }
  return run;
}

/** The one revert commit a successful revert must leave (and its flake.lock back on v1). */
async function oneRevertCommit(r: Run, title: string): Promise<void> {
  const commits = await revertCommits(r.w, r.s.mergeSha as string);
  rec.check(`${title}: exactly one revert commit on the branch`, commits.length === 1, commits);
  rec.check(`${title}: status names that commit`, r.s.revert?.kind === 'commit' && r.s.revert.commitSha === commits[0] && !r.s.revert.alreadyReverted, r.s.revert);
  rec.check(`${title}: flake.lock back on v1`, (await r.w.github.readFile(r.w.owner, r.w.repo, r.w.branch, 'flake.lock')) === fleetFlakeLock({ version: 'v1' }));
  rec.check(`${title}: no pull request opened`, r.w.github.pulls(r.w.owner, r.w.repo).length === 1);
  rec.check(`${title}: outcome failed-rolled-back`, r.s.outcome === 'failed-rolled-back', r.s.outcome);
}

test('a burst of 5xx on POST git/commits: the revert is retried and lands once', async () => {
  const r = await deploy('5xx-commits', (w) => w.github.inject({ operation: 'git/create-commit', status: 502, times: 3 }));
  rec.fault(3);
  await oneRevertCommit(r, '5xx-commits');
  const st = r.statuses('POST', '/git/commits');
  rec.check('5xx-commits: three 502s, then one created commit', JSON.stringify(st) === JSON.stringify([502, 502, 502, 201]), st);
  rec.check('5xx-commits: one ref update', JSON.stringify(r.statuses('PATCH', `/git/refs/heads/${r.w.branch}`)) === '[200]');
  rec.note(`5xx burst on POST git/commits (3×502): retried by Temporal, POST git/commits ${JSON.stringify(st)}, one revert commit`);
});

test('a burst of 5xx on PATCH git/refs (after the commit object was made): one revert commit on the branch', async () => {
  const r = await deploy('5xx-refs', (w) => w.github.inject({ operation: 'git/update-ref', status: 503, times: 3 }));
  rec.fault(3);
  await oneRevertCommit(r, '5xx-refs');
  const patches = r.statuses('PATCH', `/git/refs/heads/${r.w.branch}`);
  rec.check('5xx-refs: three 503s, then one ref update', JSON.stringify(patches) === JSON.stringify([503, 503, 503, 200]), patches);
  // Each attempt rebuilds the same commit object (same tree, parents, message, dates): one sha.
  const commits = r.statuses('POST', '/git/commits');
  rec.check('5xx-refs: one commit object per attempt, none of them left on the branch but the last', commits.length === 4, commits);
  rec.note(`5xx burst on PATCH git/refs (3×503): 4 commit objects made, 1 reaches the branch`);
});

test('a 403 rate limit with retry-after: the revert waits as asked, then lands once', async () => {
  let faultedAt = 0;
  let retriedAt = 0;
  const r = await deploy('rate-limit', (w) => w.github.inject({ operation: 'git/create-commit', status: 403, retryAfterSeconds: 3 }), {
    during: async (w) => {
      const path = `/repos/${w.owner}/${w.repo}/git/commits`;
      await waitFor('the rate-limited request', () => (w.github.requests.some((q) => q.path === path && q.status === 403) ? true : undefined), 120_000, 20);
      faultedAt = Date.now();
      await waitFor('the retried request', () => (w.github.requests.some((q) => q.path === path && q.status === 201) ? true : undefined), 60_000, 20);
      retriedAt = Date.now();
    },
  });
  rec.fault();
  await oneRevertCommit(r, 'rate-limit');
  // The 403 asked for 3 s; the activity's own backoff would have retried after 1 s.
  rec.check('rate-limit: the retry waited for retry-after (≥ 2.5 s)', retriedAt - faultedAt >= 2_500, retriedAt - faultedAt);
  rec.note(`403 rate limit, retry-after: 3 → retried after ${((retriedAt - faultedAt) / 1000).toFixed(1)} s, one revert commit`);
});

test('a 403 rate limit with only x-ratelimit-reset: retried after the reset, lands once', async () => {
  let faultedAt = 0;
  let retriedAt = 0;
  const r = await deploy('rate-limit-reset', (w) => w.github.inject({ operation: 'git/update-ref', status: 403, retryAfterSeconds: null }), {
    during: async (w) => {
      const path = `/repos/${w.owner}/${w.repo}/git/refs/heads/${w.branch}`;
      await waitFor('the rate-limited request', () => (w.github.requests.some((q) => q.path === path && q.status === 403) ? true : undefined), 120_000, 20);
      faultedAt = Date.now();
      await waitFor('the retried request', () => (w.github.requests.some((q) => q.path === path && q.status === 200) ? true : undefined), 60_000, 20);
      retriedAt = Date.now();
    },
  });
  rec.fault();
  await oneRevertCommit(r, 'rate-limit-reset');
  rec.check('rate-limit-reset: retried (after ≥ 1 s)', retriedAt - faultedAt >= 1_000, retriedAt - faultedAt);
  rec.note(`403 rate limit with x-ratelimit-reset only → retried after ${((retriedAt - faultedAt) / 1000).toFixed(1)} s, one revert commit`);
});

test('a push racing the revert: the revert is rebuilt on the new head, the raced commit survives, one revert commit', async () => {
  const r = await deploy('race', (w) => w.github.racePushOnce(w.owner, w.repo, w.branch, { 'hosts/extra.nix': '{ }\n' }, 'Add a host (concurrent push)'));
  rec.fault();
  await oneRevertCommit(r, 'race');
  const patches = r.statuses('PATCH', `/git/refs/heads/${r.w.branch}`);
  rec.check('race: the first ref update lost the race (422), the second landed', JSON.stringify(patches) === JSON.stringify([422, 200]), patches);
  const [revert, raced] = await r.w.github.log(r.w.owner, r.w.repo, r.w.branch, 2);
  rec.check('race: the revert sits on the raced commit, which survives', raced?.subject === 'Add a host (concurrent push)' && revert?.parents[0] === raced.sha, { revert, raced });
  rec.check('race: the raced file is still there', (await r.w.github.readFile(r.w.owner, r.w.repo, r.w.branch, 'hosts/extra.nix')) === '{ }\n');
  rec.note('a push racing the revert (racePushOnce): PATCH git/refs [422, 200], revert on top of the raced commit');
});

test('a protected branch: the revert falls back to one pull request, and says so', async () => {
  const r = await deploy('protected', (w) => w.github.protectBranch(w.owner, w.repo, w.branch));
  rec.fault();
  const rv = r.s.revert;
  rec.check('protected: a revert pull request, marked as the protected-branch fallback', rv?.kind === 'pull-request' && rv.fellBackFromProtectedBranch === true && /Protected branch/.test(rv.reason ?? ''), rv);
  const reverts = r.w.github.pulls(r.w.owner, r.w.repo).filter((p) => p.headRef.startsWith('revert-'));
  rec.check('protected: exactly one revert pull request, open', reverts.length === 1 && reverts[0]?.state === 'open' && reverts[0].number === (rv?.kind === 'pull-request' ? rv.number : -1), reverts);
  rec.check('protected: one POST pulls', r.count('POST', '/pulls') === 1);
  rec.check('protected: nothing pushed to the branch', (await revertCommits(r.w, r.s.mergeSha as string)).length === 0);
  const auto = r.s.audit.find((a) => a.action === 'auto-compensate');
  rec.check('protected: the operator is told (audit names the fallback)', /branch protected: fell back to a pull request/.test(auto?.outcome ?? ''), auto);
  rec.note(`protected branch: revert pull request #${rv?.kind === 'pull-request' ? rv.number : '?'}; audit: "${auto?.outcome.slice(0, 110)}"`);
});

test('flake.lock edited after the merge: a RevertConflict reported to the operator, no commit written', async () => {
  const r = await deploy('conflict', (w) => w.fleet.host('g1').hangActivation(true), {
    during: async (w) => {
      // Hold g1 mid-activation (the merge is done), edit flake.lock on the branch, then let it go.
      await waitFor('g1 to hang mid-activation', () => (w.fleet.host('g1').commandLog().some((e) => e.tool === 'hang') ? true : undefined), 120_000);
      await w.github.pushCommit(w.owner, w.repo, w.branch, { 'flake.lock': fleetFlakeLock({ version: 'v3' }) }, 'flake.lock: bump by hand');
      w.fleet.host('g1').hangActivation(false);
    },
  });
  rec.fault();
  const rv = r.s.revert;
  rec.check('conflict: status.revert failed with conflict', rv?.kind === 'failed' && rv.conflict === true && /flake\.lock/.test(rv.error), rv);
  rec.check('conflict: no commit object made, no ref update, no pull request', r.count('POST', '/git/commits') === 0 && r.count('PATCH', `/git/refs/heads/${r.w.branch}`) === 0 && r.count('POST', '/pulls') === 0);
  rec.check('conflict: the hand edit is untouched', (await r.w.github.readFile(r.w.owner, r.w.repo, r.w.branch, 'flake.lock')) === fleetFlakeLock({ version: 'v3' }));
  const auto = r.s.audit.find((a) => a.action === 'auto-compensate');
  rec.check('conflict: the operator is told (audit), and may still ask for the revert', /revert failed/.test(auto?.outcome ?? '') && r.s.phase === 'awaiting-operator', auto);
  // Issue 12, bug 3: the merge is still on the branch, so the outcome never says rolled back.
  rec.check('conflict: the outcome says the revert failed', r.s.outcome === 'failed-revert-failed', r.s.outcome);
  rec.note(`flake.lock edited after the merge: status.revert ${JSON.stringify({ kind: rv?.kind, conflict: rv?.kind === 'failed' ? rv.conflict : undefined })}: "${rv?.kind === 'failed' ? rv.error.slice(0, 100) : ''}"`);
});

test('a merge that meets a 5xx then succeeds: merged once, deployed', async () => {
  const r = await deploy('merge-5xx', (w) => w.github.inject({ operation: 'pulls/merge', status: 502 }), { failing: false });
  rec.fault();
  const puts = r.statuses('PUT', `/pulls/1/merge`);
  rec.check('merge-5xx: PUT merge [502, 200]', JSON.stringify(puts) === JSON.stringify([502, 200]), puts);
  rec.check('merge-5xx: the deployment succeeded on the merge commit', r.s.outcome === 'succeeded' && r.s.hosts[0]?.state === 'switched', { outcome: r.s.outcome, hosts: r.s.hosts });
  rec.check('merge-5xx: one merge audit entry', r.s.audit.filter((a) => a.action === 'merge').length === 1);
  rec.note(`merge meets a 502 then succeeds: PUT merge ${JSON.stringify(puts)}, one merge commit, outcome ${r.s.outcome}`);
});
