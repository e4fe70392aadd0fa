import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Octokit } from '@octokit/rest';
import { LOCK_V1, LOCK_V2, OWNER, repoName, startWorld, TOKEN } from './world';
import type { World } from './world';

const run = promisify(execFile);
const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
let w: World;

beforeAll(async () => {
  w = await startWorld();
});

afterAll(async () => {
  await w.gh.stop();
});

const statusOf = (e: unknown): number | undefined => (e as { status?: number }).status;
const messageOf = (e: unknown): string => String((e as { response?: { data?: { message?: string } } }).response?.data?.message);

describe('GitHub stand-in', () => {
  // The object form of octokit.request is untyped on purpose here: the requests are deliberately wrong.
  test('validation catches deliberately wrong requests: 422 naming the field, and recorded', async () => {
    const repo = repoName('validate');
    const head = await w.gh.createRepo(OWNER, repo, { files: { 'flake.lock': LOCK_V1 } });
    const before = w.gh.validationFailures.length;
    const badForce = await w.octokit
      .request({ method: 'PATCH', url: '/repos/{owner}/{repo}/git/refs/{ref}', owner: OWNER, repo, ref: 'heads/main', sha: head, force: 'no' })
      .catch((e: unknown) => e);
    expect(statusOf(badForce)).toBe(422);
    expect(messageOf(badForce)).toContain("'properties/force'");
    const tree = (await w.octokit.rest.git.getCommit({ owner: OWNER, repo, commit_sha: head })).data.tree.sha;
    const badParents = await w.octokit.request({ method: 'POST', url: '/repos/{owner}/{repo}/git/commits', owner: OWNER, repo, message: 'x', tree, parents: head }).catch((e: unknown) => e);
    expect(statusOf(badParents)).toBe(422);
    expect(messageOf(badParents)).toContain("'properties/parents'");
    const missingSha = await w.octokit.request({ method: 'POST', url: '/repos/{owner}/{repo}/git/refs', owner: OWNER, repo, ref: 'refs/heads/x' }).catch((e: unknown) => e);
    expect(messageOf(missingSha)).toContain('"sha" wasn\'t supplied');
    const failures = w.gh.validationFailures.splice(before);
    expect(failures.map((f) => [f.direction, f.operationId, f.errors[0]?.split(' ')[0]])).toEqual([
      ['request', 'git/update-ref', '/force'],
      ['request', 'git/create-commit', '/parents'],
      ['request', 'git/create-ref', '/'],
    ]);
    // Nothing was written.
    expect(await w.gh.branchHead(OWNER, repo, 'main')).toBe(head);
  });

  test('a token is required; a wrong one is refused', async () => {
    const repo = repoName('auth');
    await w.gh.createRepo(OWNER, repo);
    const anon = new Octokit({ baseUrl: w.gh.baseUrl, log: quiet });
    await expect(anon.rest.git.getRef({ owner: OWNER, repo, ref: 'heads/main' })).rejects.toMatchObject({ status: 401 });
    const wrong = new Octokit({ baseUrl: w.gh.baseUrl, auth: 'nope', log: quiet });
    await expect(wrong.rest.git.getRef({ owner: OWNER, repo, ref: 'heads/main' })).rejects.toMatchObject({ status: 401 });
    expect(JSON.stringify(w.gh.requests)).not.toContain(TOKEN);
  });

  test('refs: create refuses an existing ref, update refuses a non-fast-forward, protected branch refused', async () => {
    const repo = repoName('refs');
    const first = await w.gh.createRepo(OWNER, repo, { files: { 'flake.lock': LOCK_V1 } });
    const second = await w.gh.pushCommit(OWNER, repo, 'main', { 'flake.lock': LOCK_V2 }, 'bump');
    const o = w.octokit.rest.git;
    await o.createRef({ owner: OWNER, repo, ref: 'refs/heads/feature', sha: first });
    const exists = await o.createRef({ owner: OWNER, repo, ref: 'refs/heads/feature', sha: first }).catch((e: unknown) => e);
    expect([statusOf(exists), messageOf(exists)]).toEqual([422, 'Reference already exists']);
    const back = await o.updateRef({ owner: OWNER, repo, ref: 'heads/main', sha: first, force: false }).catch((e: unknown) => e);
    expect([statusOf(back), messageOf(back)]).toEqual([422, 'Update is not a fast forward']);
    expect((await o.updateRef({ owner: OWNER, repo, ref: 'heads/feature', sha: second })).data.object.sha).toBe(second);
    expect((await o.updateRef({ owner: OWNER, repo, ref: 'heads/feature', sha: first, force: true })).data.object.sha).toBe(first);
    w.gh.protectBranch(OWNER, repo, 'feature');
    const prot = await o.updateRef({ owner: OWNER, repo, ref: 'heads/feature', sha: second }).catch((e: unknown) => e);
    expect([statusOf(prot), messageOf(prot)]).toEqual([422, 'Protected branch update failed for refs/heads/feature.']);
    const missing = await o.getRef({ owner: OWNER, repo, ref: 'heads/nope' }).catch((e: unknown) => e);
    expect(statusOf(missing)).toBe(404);
  });

  test('racePushOnce: a concurrent commit lands just before the next ref update, which then fails the compare-and-swap', async () => {
    const repo = repoName('race');
    const head = await w.gh.createRepo(OWNER, repo, { files: { 'a.txt': 'a\n' } });
    const o = w.octokit.rest.git;
    const tree = await o.createTree({ owner: OWNER, repo, base_tree: head, tree: [{ path: 'b.txt', mode: '100644', type: 'blob', content: 'b\n' }] });
    const commit = await o.createCommit({ owner: OWNER, repo, message: 'add b', tree: tree.data.sha, parents: [head] });
    w.gh.racePushOnce(OWNER, repo, 'main', { 'c.txt': 'c\n' }, 'concurrent');
    const err = await o.updateRef({ owner: OWNER, repo, ref: 'heads/main', sha: commit.data.sha }).catch((e: unknown) => e);
    expect([statusOf(err), messageOf(err)]).toEqual([422, 'Update is not a fast forward']);
    const log = await w.gh.log(OWNER, repo, 'main');
    expect(log.map((c) => c.subject)).toEqual(['concurrent', 'Initial commit']);
  });

  test('trees: recursive listing, base_tree with sha null deletes, content writes', async () => {
    const repo = repoName('trees');
    const head = await w.gh.createRepo(OWNER, repo, { files: { 'flake.lock': LOCK_V1, 'hosts/a.nix': 'a\n', 'hosts/b.nix': 'b\n' } });
    const o = w.octokit.rest.git;
    const rootTree = (await o.getCommit({ owner: OWNER, repo, commit_sha: head })).data.tree.sha;
    const listing = await o.getTree({ owner: OWNER, repo, tree_sha: rootTree, recursive: '1' });
    expect(listing.data.tree.map((e) => `${e.type}:${e.path}`)).toEqual(['blob:flake.lock', 'tree:hosts', 'blob:hosts/a.nix', 'blob:hosts/b.nix']);
    const t = await o.createTree({
      owner: OWNER,
      repo,
      base_tree: rootTree,
      tree: [
        { path: 'hosts/a.nix', mode: '100644', type: 'blob', sha: null },
        { path: 'new/c.nix', mode: '100644', type: 'blob', content: 'c\n' },
      ],
    });
    const flat = await o.getTree({ owner: OWNER, repo, tree_sha: t.data.sha, recursive: '1' });
    expect(flat.data.tree.filter((e) => e.type === 'blob').map((e) => e.path)).toEqual(['flake.lock', 'hosts/b.nix', 'new/c.nix']);
    const gone = await o.createTree({ owner: OWNER, repo, base_tree: rootTree, tree: [{ path: 'nope', mode: '100644', type: 'blob', sha: null }] }).catch((e: unknown) => e);
    expect(statusOf(gone)).toBe(422);
  });

  test('pull requests: list by head, duplicate refused, conflicting merge is 405, moved head is 409', async () => {
    const repo = repoName('pulls');
    await w.gh.createRepo(OWNER, repo, { files: { 'flake.lock': LOCK_V1 } });
    const pr = await w.gh.openPullRequest(OWNER, repo, { title: 'bump', headBranch: 'bump', files: { 'flake.lock': LOCK_V2 } });
    const p = w.octokit.rest.pulls;
    expect((await p.list({ owner: OWNER, repo, head: `${OWNER}:bump` })).data.map((x) => x.number)).toEqual([pr.number]);
    expect((await p.list({ owner: OWNER, repo, head: `${OWNER}:other` })).data).toEqual([]);
    const dup = await p.create({ owner: OWNER, repo, head: 'bump', base: 'main', title: 'again' }).catch((e: unknown) => e);
    expect(statusOf(dup)).toBe(422);
    const stale = await p.merge({ owner: OWNER, repo, pull_number: pr.number, sha: 'f'.repeat(40) }).catch((e: unknown) => e);
    expect(statusOf(stale)).toBe(409);
    await w.gh.pushCommit(OWNER, repo, 'main', { 'flake.lock': '{"conflict":true}\n' }, 'conflicting edit');
    const got = await p.get({ owner: OWNER, repo, pull_number: pr.number });
    expect([got.data.mergeable, got.data.mergeable_state]).toEqual([false, 'dirty']);
    const conflict = await p.merge({ owner: OWNER, repo, pull_number: pr.number, sha: pr.headSha }).catch((e: unknown) => e);
    expect([statusOf(conflict), messageOf(conflict)]).toEqual([405, 'Pull Request is not mergeable']);
  });

  test('fault injection: status, times, and rate-limit headers', async () => {
    const repo = repoName('faults');
    await w.gh.createRepo(OWNER, repo);
    w.gh.inject({ method: 'GET', path: /\/git\/ref\/heads\/main$/, status: 403, retryAfterSeconds: 7, times: 2 });
    const o = w.octokit.rest.git;
    for (let i = 0; i < 2; i++) {
      const err = await o.getRef({ owner: OWNER, repo, ref: 'heads/main' }).catch((e: unknown) => e);
      expect(statusOf(err)).toBe(403);
      const headers = (err as { response: { headers: Record<string, string> } }).response.headers;
      expect(headers['retry-after']).toBe('7');
      expect(headers['x-ratelimit-remaining']).toBe('0');
    }
    expect((await o.getRef({ owner: OWNER, repo, ref: 'heads/main' })).status).toBe(200);
    expect(w.gh.requests.filter((r) => r.path === `/repos/${OWNER}/${repo}/git/ref/heads/main`).map((r) => r.status)).toEqual([403, 403, 200]);
  });

  test('pull request records persist in the data dir and survive a restart', async () => {
    const { startGitHubStandin } = await import('../../testkit/github');
    const dataDir = await mkdtemp(join(tmpdir(), 'gh-persist-'));
    try {
      const a = await startGitHubStandin({ dataDir, token: TOKEN });
      await a.createRepo(OWNER, 'persist', { files: { 'flake.lock': LOCK_V1 } });
      const pr = await a.openPullRequest(OWNER, 'persist', { title: 'bump', headBranch: 'bump', files: { 'flake.lock': LOCK_V2 } });
      await a.stop();
      const b = await startGitHubStandin({ dataDir, token: TOKEN });
      const o = new Octokit({ baseUrl: b.baseUrl, auth: TOKEN });
      const got = await o.rest.pulls.get({ owner: OWNER, repo: 'persist', pull_number: pr.number });
      expect([got.data.title, got.data.head.sha, got.data.state]).toEqual(['bump', pr.headSha, 'open']);
      expect(b.validationFailures).toEqual([]);
      await b.stop();
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  test('git smart HTTP: a real git clone and fetch of a commit by sha', async () => {
    const repo = repoName('clone');
    const head = await w.gh.createRepo(OWNER, repo, { files: { 'flake.lock': LOCK_V1, 'flake.nix': '{ }\n' } });
    const second = await w.gh.pushCommit(OWNER, repo, 'main', { 'flake.lock': LOCK_V2 }, 'bump');
    const dir = await mkdtemp(join(tmpdir(), 'gh-clone-'));
    try {
      const env = { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' };
      await run('git', ['clone', '--quiet', w.gh.gitUrl(OWNER, repo), join(dir, 'c')], { env });
      expect(await readFile(join(dir, 'c', 'flake.lock'), 'utf8')).toBe(LOCK_V2);
      const { stdout } = await run('git', ['-C', join(dir, 'c'), 'rev-parse', 'HEAD'], { env });
      expect(stdout.trim()).toBe(second);
      // Fetch an exact (non-tip) commit, as Nix does for git+http://…?rev=SHA.
      await run('git', ['init', '--quiet', join(dir, 'f')], { env });
      await run('git', ['-C', join(dir, 'f'), 'fetch', '--quiet', '--depth=1', w.gh.gitUrl(OWNER, repo), head], { env });
      const { stdout: fetched } = await run('git', ['-C', join(dir, 'f'), 'cat-file', '-p', `${head}:flake.lock`], { env });
      expect(fetched).toBe(LOCK_V1);
      const pushes = await run('git', ['-C', join(dir, 'c'), 'push', 'origin', 'HEAD:refs/heads/evil'], { env }).catch((e: unknown) => e);
      expect((pushes as { code?: unknown }).code).toBe(128); // read-only: receive-pack is refused
      expect(w.gh.requests.some((r) => r.path.startsWith(`/git/${OWNER}/${repo}.git/`))).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('the response validator catches a malformed reply; the pulls requested_teams exception is scoped', async () => {
    const { OpenApiValidator } = await import('../../testkit/github');
    const strict = new OpenApiValidator([]);
    const lenient = new OpenApiValidator();
    const ref = strict.match('GET', `/repos/${OWNER}/r/git/ref/heads/main`);
    expect(ref?.operationId).toBe('git/get-ref');
    const bad = strict.validateResponse(ref!, 200, { ref: 'refs/heads/main', node_id: 'x', url: 'not a uri', object: { type: 'commit', sha: 'short', url: 'http://h/x' } });
    expect(bad?.map((e) => e.instancePath).sort()).toEqual(['/object/sha', '/url']);
    // A real pulls/get reply with a team lacking `type`, as in GitHub's own example.
    const repo = repoName('teams');
    await w.gh.createRepo(OWNER, repo, { files: { 'flake.lock': LOCK_V1 } });
    const pr = await w.gh.openPullRequest(OWNER, repo, { title: 't', headBranch: 't', files: { 'flake.lock': LOCK_V2 } });
    const body = (await w.octokit.rest.pulls.get({ owner: OWNER, repo, pull_number: pr.number })).data as unknown as Record<string, unknown>;
    const team = { id: 1, node_id: 'T', url: 'https://x/t', members_url: 'https://x/m', name: 'ops', description: null, permission: 'push', privacy: 'closed', html_url: 'https://x/h', repositories_url: 'https://x/r', slug: 'ops', parent: null };
    const withTeam = { ...body, requested_teams: [team] };
    const get = strict.match('GET', `/repos/${OWNER}/${repo}/pulls/${pr.number}`)!;
    expect(strict.validateResponse(get, 200, withTeam)?.map((e) => e.instancePath)).toEqual(['/requested_teams/0']);
    expect(lenient.validateResponse(get, 200, withTeam)).toEqual([]);
    expect(lenient.validateResponse(get, 200, { ...withTeam, number: 'one' })?.map((e) => e.instancePath)).toEqual(['/number']);
  });

  test('every reply in this file matched the schema (request failures above were deliberate and removed)', () => {
    expect(w.gh.validationFailures).toEqual([]);
  });
});
