/**
 * GitHub App authentication against the stand-in: the installation-token exchange as GitHub's
 * OpenAPI describes it (app JWT checked with the app's public key), tokens that expire and are
 * renewed before they do, and revert commits GitHub authors and signs.
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { githubAuth, readEnv, WorkerEnv } from '../../src/config';
import { createGitHub, installationTokenSource, mergePullRequest, revertMerge } from '../../src/github';
import { startGitHubStandin, type GitHubStandin } from '../../testkit/github';
import { waitFor } from '../support/temporal';
import { LOCK_V1, LOCK_V2, OWNER, revertCommitsOnMain } from './world';

const APP_ID = 424242;
const INSTALLATION_ID = 5151;
const pair = () => generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
const appKeys = pair();
const otherKeys = pair();

let gh: GitHubStandin;

beforeAll(async () => {
  gh = await startGitHubStandin({ app: { id: APP_ID, installationId: INSTALLATION_ID, publicKey: appKeys.publicKey, slug: 'nixfleet-test', tokenTtlSeconds: 3 } });
});
afterAll(async () => {
  await gh.stop();
});
afterEach(() => {
  expect(gh.validationFailures).toEqual([]);
});

const b64 = (x: object): string => Buffer.from(JSON.stringify(x)).toString('base64url');
function jwt(claims: Record<string, unknown>, key = appKeys.privateKey, alg = 'RS256'): string {
  const head = `${b64({ alg, typ: 'JWT' })}.${b64(claims)}`;
  return `${head}.${sign('RSA-SHA256', Buffer.from(head), key).toString('base64url')}`;
}
const now = (): number => Math.floor(Date.now() / 1000);
async function exchange(bearer: string, installation = INSTALLATION_ID): Promise<{ status: number; body: { token?: string; expires_at?: string; message?: string } }> {
  const res = await fetch(`${gh.baseUrl}/app/installations/${installation}/access_tokens`, { method: 'POST', headers: { authorization: `Bearer ${bearer}`, accept: 'application/vnd.github+json' } });
  return { status: res.status, body: (await res.json()) as { token?: string; expires_at?: string; message?: string } };
}

describe('the stand-in exchanges an app JWT for an installation token as GitHub does', () => {
  test('a valid JWT gets a token with expires_at; the token works until it expires, then 401', async () => {
    const r = await exchange(jwt({ iss: String(APP_ID), iat: now() - 30, exp: now() + 540 }));
    expect(r.status).toBe(201);
    expect(r.body.token).toMatch(/^ghs_/);
    const expires = Date.parse(r.body.expires_at as string);
    expect(expires).toBeGreaterThan(Date.now());
    await gh.createRepo(OWNER, 'exchange', { files: { 'flake.lock': LOCK_V1 } });
    const get = (): Promise<number> => fetch(`${gh.baseUrl}/repos/${OWNER}/exchange/git/ref/heads/main`, { headers: { authorization: `token ${r.body.token}` } }).then((x) => x.status);
    expect(await get()).toBe(200);
    const refusedBefore = gh.appTokens.refusedExpired;
    await waitFor('the installation token to expire', async () => ((await get()) === 401 ? true : undefined), 20_000, 250);
    expect(Date.now()).toBeGreaterThanOrEqual(expires);
    expect(gh.appTokens.refusedExpired).toBeGreaterThan(refusedBefore);
  });

  test.each([
    ['signed with another key', () => jwt({ iss: APP_ID, iat: now() - 30, exp: now() + 540 }, otherKeys.privateKey), 401, /could not be decoded/],
    ['expired', () => jwt({ iss: APP_ID, iat: now() - 700, exp: now() - 100 }), 401, /'exp'.*future time/],
    ['exp more than 10 minutes ahead', () => jwt({ iss: APP_ID, iat: now(), exp: now() + 660 }), 401, /too far in the future/],
    ['iat not an integer', () => jwt({ iss: APP_ID, iat: now() + 0.5, exp: now() + 500 }), 401, /'iat'/],
    ['another app', () => jwt({ iss: APP_ID + 1, iat: now() - 30, exp: now() + 540 }), 404, /Integration not found/],
    ['not a JWT', () => 'ghp_not_a_jwt', 401, /could not be decoded/],
    ['alg none', () => `${b64({ alg: 'none' })}.${b64({ iss: APP_ID, iat: now(), exp: now() + 500 })}.`, 401, /could not be decoded/],
  ])('refuses a JWT %s', async (_what, make, status, message) => {
    const r = await exchange(make());
    expect(r.status).toBe(status);
    expect(r.body.message).toMatch(message);
  });

  test('refuses another installation, and a token that was never issued', async () => {
    expect((await exchange(jwt({ iss: APP_ID, iat: now() - 30, exp: now() + 540 }), INSTALLATION_ID + 1)).status).toBe(404);
    const res = await fetch(`${gh.baseUrl}/repos/${OWNER}/exchange/git/ref/heads/main`, { headers: { authorization: 'token ghs_never_issued_0123456789' } });
    expect(res.status).toBe(401);
  });
});

describe('the adapter as an app', () => {
  const app = { appId: APP_ID, privateKey: appKeys.privateKey, installationId: INSTALLATION_ID };

  test('renews the installation token before it expires: requests across several lifetimes never meet a 401', async () => {
    await gh.createRepo(OWNER, 'renewal', { files: { 'flake.lock': LOCK_V1 } });
    const octokit = createGitHub({ baseUrl: gh.baseUrl, app });
    const issuedBefore = gh.appTokens.issued;
    const refusedBefore = gh.appTokens.refusedExpired;
    const statuses: number[] = [];
    // Until three tokens have been issued (3 s each), keep reading the branch.
    await waitFor(
      'three installation tokens',
      async () => {
        const { status } = await octokit.rest.git.getRef({ owner: OWNER, repo: 'renewal', ref: 'heads/main' });
        statuses.push(status);
        return gh.appTokens.issued - issuedBefore >= 3 ? true : undefined;
      },
      30_000,
      100,
    );
    expect(new Set(statuses)).toEqual(new Set([200]));
    expect(gh.appTokens.refusedExpired).toBe(refusedBefore);
    // One token per lifetime, not one per request.
    expect(statuses.length).toBeGreaterThan(gh.appTokens.issued - issuedBefore);
  });

  test('concurrent requests share one renewal', async () => {
    const token = installationTokenSource({ app, baseUrl: gh.baseUrl, userAgent: 'test' });
    const before = gh.appTokens.issued;
    const tokens = await Promise.all(Array.from({ length: 8 }, () => token()));
    expect(new Set(tokens).size).toBe(1);
    expect(gh.appTokens.issued - before).toBe(1);
  });

  test('a revert made as the app is authored by GitHub ([bot], signed), lands on a branch that requires signed commits, and a retry finds it by its trailer', async () => {
    const repo = 'signed-revert';
    const octokit = createGitHub({ baseUrl: gh.baseUrl, app });
    await gh.createRepo(OWNER, repo, { files: { 'flake.lock': LOCK_V1 } });
    const pr = await gh.openPullRequest(OWNER, repo, { title: 'flake.lock: Update', headBranch: 'update', files: { 'flake.lock': LOCK_V2 } });
    const { mergeSha } = await mergePullRequest(octokit, { owner: OWNER, repo, number: pr.number, expectedHeadSha: pr.headSha, method: 'merge' });
    gh.requireSignedCommits(OWNER, repo, 'main');
    const args = { owner: OWNER, repo, branch: 'main', mergeSha, prNumber: pr.number, mode: 'commit' as const, reason: 'switch failed', requestedBy: 'alice', requestedAt: '2026-01-02T03:04:05Z' };

    // With a synthetic author the commit is unsigned: the branch refuses it and the revert falls back to a pull request.
    const unsigned = await revertMerge(octokit, { ...args, mode: 'commit' });
    expect(unsigned.status).toBe('pull-request-opened');
    expect(unsigned.fellBackToPullRequest).toBe(true);
    expect(await gh.readFile(OWNER, repo, 'main', 'flake.lock')).toBe(LOCK_V2);

    // Left to GitHub, the commit is the app's and signed: the branch accepts it.
    const fresh = 'signed-revert-2';
    await gh.createRepo(OWNER, fresh, { files: { 'flake.lock': LOCK_V1 } });
    const pr2 = await gh.openPullRequest(OWNER, fresh, { title: 'flake.lock: Update', headBranch: 'update', files: { 'flake.lock': LOCK_V2 } });
    const m2 = await mergePullRequest(octokit, { owner: OWNER, repo: fresh, number: pr2.number, expectedHeadSha: pr2.headSha, method: 'merge' });
    gh.requireSignedCommits(OWNER, fresh, 'main');
    const r = await revertMerge(octokit, { ...args, repo: fresh, mergeSha: m2.mergeSha, prNumber: pr2.number, authoredByGitHub: true });
    expect(r).toMatchObject({ status: 'reverted', fellBackToPullRequest: false });
    expect(await gh.readFile(OWNER, fresh, 'main', 'flake.lock')).toBe(LOCK_V1);
    const { data: commit } = await octokit.rest.git.getCommit({ owner: OWNER, repo: fresh, commit_sha: r.revertCommitSha as string });
    expect(commit.author.name).toBe('nixfleet-test[bot]');
    expect(commit.committer.name).toBe('nixfleet-test[bot]');
    expect(commit.author.date).not.toBe('2026-01-02T03:04:05Z');
    expect(commit.verification).toMatchObject({ verified: true });

    // The retried activity: the branch is already restored, and the revert is found by its trailer.
    const again = await revertMerge(octokit, { ...args, repo: fresh, mergeSha: m2.mergeSha, prNumber: pr2.number, authoredByGitHub: true });
    expect(again).toMatchObject({ status: 'already-reverted', revertedBy: r.revertCommitSha });
    expect(await revertCommitsOnMain({ gh, octokit }, fresh, m2.mergeSha)).toEqual([r.revertCommitSha]);
  });
});

describe('worker configuration: a token or an app', () => {
  const base = { NIXFLEET_SSH_KEY: '/k', NIXFLEET_KNOWN_HOSTS: '/kh' };
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'app-config-'));
    writeFileSync(join(dir, 'app.pem'), appKeys.privateKey);
    writeFileSync(join(dir, 'not.pem'), 'ghp_a_token_not_a_key\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const app = (): Record<string, string> => ({ GITHUB_APP_ID: String(APP_ID), GITHUB_APP_PRIVATE_KEY_FILE: join(dir, 'app.pem'), GITHUB_APP_INSTALLATION_ID: String(INSTALLATION_ID) });

  test('the three GITHUB_APP_* settings give an app; the key file is read', () => {
    expect(githubAuth(readEnv(WorkerEnv, { ...base, ...app() }))).toEqual({ app: { appId: APP_ID, privateKey: appKeys.privateKey, installationId: INSTALLATION_ID } });
    expect(githubAuth(readEnv(WorkerEnv, { ...base, GITHUB_TOKEN: 'ghp_x' }))).toEqual({ token: 'ghp_x' });
  });

  test('a clear error naming the field: neither, both, an incomplete app, a bad id, a file that is no key', () => {
    expect(() => readEnv(WorkerEnv, base)).toThrow(/GITHUB_TOKEN.*GITHUB_APP_ID/);
    expect(() => readEnv(WorkerEnv, { ...base, ...app(), GITHUB_TOKEN: 'ghp_x' })).toThrow(/GITHUB_TOKEN.*not both/);
    expect(() => readEnv(WorkerEnv, { ...base, GITHUB_APP_ID: '1' })).toThrow(/GITHUB_APP_INSTALLATION_ID.*go together/);
    expect(() => readEnv(WorkerEnv, { ...base, ...app(), GITHUB_APP_ID: '12a' })).toThrow(/GITHUB_APP_ID.*positive integer/);
    expect(() => githubAuth(readEnv(WorkerEnv, { ...base, ...app(), GITHUB_APP_PRIVATE_KEY_FILE: join(dir, 'not.pem') }))).toThrow(/GITHUB_APP_PRIVATE_KEY_FILE: not a PEM private key/);
    expect(() => githubAuth(readEnv(WorkerEnv, { ...base, ...app(), GITHUB_APP_PRIVATE_KEY_FILE: join(dir, 'missing.pem') }))).toThrow(/GITHUB_APP_PRIVATE_KEY_FILE: ENOENT/);
  });

  test('the key can come from a systemd credential (github-app-key)', () => {
    const creds = join(dir, 'creds');
    mkdirSync(creds, { recursive: true });
    writeFileSync(join(creds, 'github-app-key'), appKeys.privateKey);
    const env = readEnv(WorkerEnv, { ...base, GITHUB_APP_ID: String(APP_ID), GITHUB_APP_INSTALLATION_ID: String(INSTALLATION_ID), CREDENTIALS_DIRECTORY: creds });
    expect(githubAuth(env)).toMatchObject({ app: { privateKey: appKeys.privateKey } });
  });
});
