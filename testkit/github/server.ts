/**
 * The GitHub stand-in: a local HTTP server answering the REST calls the product makes, backed by
 * real bare git repositories (git CLI), validating every request and response against GitHub's
 * OpenAPI description, with fault injection and git smart HTTP (git http-backend) for clones.
 */
import { spawn } from 'node:child_process';
import { createHmac, createPublicKey, randomBytes, randomUUID, verify as verifySignature } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { git, gitRaw } from './git';
import { describeRequestErrors, formatErrors, OpenApiValidator } from './openapi';
import type { MatchedOperation, ValidationException, ValidationFailure } from './openapi';
import { BareRepo, TreeChangeError, ZERO_SHA } from './repo';
import type { Signature, TreeChange } from './repo';
import { diffEntry, fullRepository, gitCommit, gitRef, label, listedCommit, pullRequest, pullRequestSimple, repository, simpleUser } from './shapes';
import type { PullLive, PullRecord, RepoMeta } from './shapes';

export interface StandinOptions {
  /** Where bare repositories and pull request records live; a fresh temp dir by default (removed on stop). */
  dataDir?: string;
  /** The token clients must present; any non-empty token when omitted. */
  token?: string;
  /** The login the token belongs to (author of API-made commits, merger of pull requests). */
  user?: string;
  /** Allowed schema deviations; defaults to DEFAULT_EXCEPTIONS (pulls requested_teams[].type). */
  exceptions?: ValidationException[];
  /** Debug sink: one line per request (method, path, status). Never sees the token. */
  log?: (line: string) => void;
  /**
   * A GitHub App installed on every repository. Clients exchange an app JWT (RS256, signed with the
   * app's private key, iss = id, exp at most 10 minutes ahead) for an installation token at
   * POST /app/installations/{installation_id}/access_tokens; installation tokens expire after
   * tokenTtlSeconds (GitHub: one hour). With an app, only its installation tokens (and `token`, if
   * set) are accepted.
   */
  app?: GitHubAppOptions;
}

export interface GitHubAppOptions {
  id: number;
  /** The app's public key (PEM or KeyObject): JWTs are verified with it. */
  publicKey: string | KeyObject;
  installationId: number;
  /** The app's slug: its commits are by `<slug>[bot]`. */
  slug?: string;
  /** Lifetime of an installation token (default 3600, GitHub's). */
  tokenTtlSeconds?: number;
}

export interface Fault {
  /** Operation id (e.g. "git/update-ref"); or method and/or path below. */
  operation?: string;
  method?: string;
  path?: RegExp;
  status: number;
  /** How many matching requests get the fault (default 1). */
  times?: number;
  message?: string;
  /** For 403/429: seconds in retry-after (default 1); set null to send only x-ratelimit-* headers. */
  retryAfterSeconds?: number | null;
  headers?: Record<string, string>;
  body?: Record<string, unknown>;
}

export interface RequestLogEntry {
  method: string;
  path: string;
  operationId?: string;
  status: number;
  fault?: boolean;
}

export interface FileChanges {
  [path: string]: string | null;
}

export interface MergeSettings {
  allowMergeCommit?: boolean;
  allowSquashMerge?: boolean;
  allowRebaseMerge?: boolean;
}

/** GitHub's 405 for a merge method the repository does not allow. */
const METHOD_NOT_ALLOWED: Record<'merge' | 'squash' | 'rebase', string> = {
  merge: 'Merge commits are not allowed on this repository.',
  squash: 'Squash merges are not allowed on this repository.',
  rebase: 'Rebase merges are not allowed on this repository.',
};

/** A repository webhook (Settings → Webhooks): deliveries are POSTed to `url`, signed with `secret`. */
export interface WebhookConfig {
  url: string;
  /** Without a secret GitHub sends no X-Hub-Signature-256. */
  secret?: string;
  /** Events to send (default: pull_request and pull_request_review). */
  events?: string[];
}

/** One delivery as GitHub's "Recent deliveries" lists it. */
export interface WebhookDelivery {
  guid: string;
  event: string;
  action: string | undefined;
  url: string;
  /** The receiver's status code; 0 when it could not be reached. */
  status: number;
  /** Deliveries of this event so far (1, then 2 after a redelivery, …). */
  attempts: number;
}

export interface CommitSummary {
  sha: string;
  parents: string[];
  subject: string;
  message: string;
}

export interface GitHubStandin {
  baseUrl: string;
  dataDir: string;
  gitUrl(owner: string, repo: string): string;
  createRepo(owner: string, repo: string, opts?: { defaultBranch?: string; files?: FileChanges; message?: string }): Promise<string>;
  pushCommit(owner: string, repo: string, branch: string, files: FileChanges, message?: string, opts?: { from?: string; author?: Signature }): Promise<string>;
  openPullRequest(
    owner: string,
    repo: string,
    opts: { title: string; base?: string; headBranch: string; files?: FileChanges; commits?: Array<{ files: FileChanges; message: string }>; body?: string; user?: string },
  ): Promise<{ number: number; headSha: string }>;
  branchHead(owner: string, repo: string, branch: string): Promise<string | undefined>;
  readFile(owner: string, repo: string, ref: string, path: string): Promise<string | undefined>;
  log(owner: string, repo: string, ref: string, max?: number): Promise<CommitSummary[]>;
  pulls(owner: string, repo: string): PullRecord[];
  branches(owner: string, repo: string): Promise<string[]>;
  inject(fault: Fault): void;
  clearFaults(): void;
  racePushOnce(owner: string, repo: string, branch: string, files: FileChanges, message?: string): void;
  protectBranch(owner: string, repo: string, branch: string): void;
  /**
   * The repository's merge buttons (Settings → Pull Requests), as `allow_merge_commit`,
   * `allow_squash_merge`, `allow_rebase_merge`; unset ones keep their value (GitHub's default: all
   * allowed). GitHub refuses to turn all three off, and so does this.
   */
  setMergeSettings(owner: string, repo: string, settings: MergeSettings): void;
  /**
   * Adds a repository webhook. From then on the stand-in sends real deliveries as GitHub does: a JSON
   * POST with X-GitHub-Event, X-GitHub-Delivery (a GUID per event, the same on a redelivery),
   * X-GitHub-Hook-ID, X-Hub-Signature-256 (`sha256=` + HMAC-SHA256 of the body with the secret) and
   * User-Agent GitHub-Hookshot/…, for `pull_request` (opened, labeled) and `pull_request_review`
   * (submitted). Helpers that trigger an event wait for its delivery to be answered.
   */
  addWebhook(owner: string, repo: string, hook: WebhookConfig): void;
  /** A human adds a label to the pull request (`pull_request` `labeled`). */
  addLabel(owner: string, repo: string, number: number, name: string): Promise<void>;
  /** A human reviews the pull request at its head (`pull_request_review` `submitted`). */
  submitReview(owner: string, repo: string, number: number, review: { user: string; state: 'APPROVED' | 'CHANGES_REQUESTED' | 'COMMENTED'; body?: string }): Promise<void>;
  /** "Redeliver" in the deliveries list: the same body and headers (same GUID) sent again. */
  redeliver(guid: string): Promise<WebhookDelivery>;
  readonly deliveries: WebhookDelivery[];
  /** A human's `git push --force`: moves the branch to `sha` (any commit of the repository), bypassing protection. */
  forcePush(owner: string, repo: string, branch: string, sha: string): Promise<void>;
  readonly requests: RequestLogEntry[];
  readonly validationFailures: ValidationFailure[];
  countRequests(method: string, path: RegExp): number;
  /** Only updates made of verified (GitHub-signed) commits may move this branch. */
  requireSignedCommits(owner: string, repo: string, branch: string): void;
  /** Installation tokens issued (the last one's expiry, ms), and requests refused because their installation token had expired. */
  readonly appTokens: { issued: number; lastExpiresAt: number; refusedExpired: number };
  stop(): Promise<void>;
}

const DOCS: Record<string, string> = {
  'pulls/get': 'https://docs.github.com/rest/pulls/pulls#get-a-pull-request',
  'pulls/list': 'https://docs.github.com/rest/pulls/pulls#list-pull-requests',
  'pulls/create': 'https://docs.github.com/rest/pulls/pulls#create-a-pull-request',
  'pulls/merge': 'https://docs.github.com/rest/pulls/pulls#merge-a-pull-request',
  'git/get-commit': 'https://docs.github.com/rest/git/commits#get-a-commit-object',
  'git/create-commit': 'https://docs.github.com/rest/git/commits#create-a-commit',
  'git/get-tree': 'https://docs.github.com/rest/git/trees#get-a-tree',
  'git/create-tree': 'https://docs.github.com/rest/git/trees#create-a-tree',
  'git/get-ref': 'https://docs.github.com/rest/git/refs#get-a-reference',
  'git/create-ref': 'https://docs.github.com/rest/git/refs#create-a-reference',
  'git/update-ref': 'https://docs.github.com/rest/git/refs#update-a-reference',
  'repos/list-commits': 'https://docs.github.com/rest/commits/commits#list-commits',
  'repos/get': 'https://docs.github.com/rest/repos/repos#get-a-repository',
  'repos/compare-commits': 'https://docs.github.com/rest/commits/commits#compare-two-commits',
  'pulls/list-commits': 'https://docs.github.com/rest/pulls/pulls#list-commits-on-a-pull-request',
  'pulls/list-files': 'https://docs.github.com/rest/pulls/pulls#list-pull-requests-files',
  'apps/create-installation-access-token': 'https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app',
};

const PROTECTED_DOCS = 'https://docs.github.com/repositories/configuring-branches-and-merges-in-your-repository/managing-protected-branches/about-protected-branches';

class Reply {
  constructor(
    readonly status: number,
    readonly body: unknown,
    readonly headers: Record<string, string> = {},
  ) {}
}

function errorBody(operationId: string | undefined, status: number, message: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { message, documentation_url: (operationId && DOCS[operationId]) ?? 'https://docs.github.com/rest', status: String(status), ...extra };
}

function fail(op: string | undefined, status: number, message: string, extra: Record<string, unknown> = {}): Reply {
  return new Reply(status, errorBody(op, status, message, extra));
}

function isoNow(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** ISO date → git's "epoch +0000" form. */
function gitDate(iso: string | undefined): string | undefined {
  if (!iso) return undefined;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? undefined : `${Math.floor(t / 1000)} +0000`;
}

interface Ctx {
  meta: RepoMeta;
  repo: BareRepo;
  params: Record<string, unknown>;
  body: Record<string, unknown>;
  /** Authenticated with an installation token of the app. */
  asApp: boolean;
}

/** What verifyAppJwt found wrong, as GitHub words it (401 unless status says otherwise). */
export class JwtRefused extends Error {
  constructor(
    message: string,
    readonly status = 401,
  ) {
    super(message);
  }
}

const b64urlJson = (part: string): unknown => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));

/**
 * Checks an app JWT as GitHub does: RS256 over `header.payload`, signed by the app's key; `iss` the
 * app id; `iat` an integer not in the future (60 s of clock drift allowed); `exp` in the future and
 * at most 10 minutes ahead.
 */
export function verifyAppJwt(jwt: string, app: { id: number; publicKey: KeyObject }, nowSeconds: number): void {
  const parts = jwt.split('.');
  if (parts.length !== 3) throw new JwtRefused('A JSON web token could not be decoded');
  const [h, p, sig] = parts as [string, string, string];
  let header: { alg?: unknown };
  let payload: { iss?: unknown; iat?: unknown; exp?: unknown };
  try {
    header = b64urlJson(h) as typeof header;
    payload = b64urlJson(p) as typeof payload;
  } catch {
    throw new JwtRefused('A JSON web token could not be decoded');
  }
  if (header.alg !== 'RS256') throw new JwtRefused('A JSON web token could not be decoded');
  if (!verifySignature('RSA-SHA256', Buffer.from(`${h}.${p}`), app.publicKey, Buffer.from(sig, 'base64url'))) {
    throw new JwtRefused('A JSON web token could not be decoded');
  }
  if (String(payload.iss) !== String(app.id)) throw new JwtRefused('Integration not found', 404);
  if (typeof payload.iat !== 'number' || !Number.isInteger(payload.iat) || payload.iat > nowSeconds + 60) {
    throw new JwtRefused("'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued");
  }
  if (typeof payload.exp !== 'number' || !Number.isInteger(payload.exp) || payload.exp <= nowSeconds) {
    throw new JwtRefused("'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires");
  }
  if (payload.exp > nowSeconds + 600) throw new JwtRefused("'Expiration time' claim ('exp') is too far in the future");
}

export async function startGitHubStandin(opts: StandinOptions = {}): Promise<GitHubStandin> {
  const ownDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'gh-standin-')));
  const reposRoot = join(dataDir, 'repos');
  const tmpDir = join(dataDir, 'tmp');
  mkdirSync(reposRoot, { recursive: true });
  mkdirSync(tmpDir, { recursive: true });
  const user = opts.user ?? 'nixfleet-deployer';
  const validator = new OpenApiValidator(opts.exceptions);
  const requests: RequestLogEntry[] = [];
  const validationFailures: ValidationFailure[] = [];
  const faults: Array<Fault & { remaining: number }> = [];
  const races = new Map<string, { files: FileChanges; message: string }>();
  const hooks: Array<WebhookConfig & { id: number; owner: string; repo: string }> = [];
  const deliveries: WebhookDelivery[] = [];
  const sent = new Map<string, { url: string; headers: Record<string, string>; body: string }>();
  const pendingDeliveries = new Set<Promise<unknown>>();
  let nextReviewId = 80_000;
  /** The delivery of the last `opened` event (openPullRequest waits for it). */
  let lastOpened: Promise<void> = Promise.resolve();
  const metas = new Map<string, RepoMeta>();
  let baseUrl = '';
  let nextId = 1000;
  const app = opts.app ? { ...opts.app, publicKey: typeof opts.app.publicKey === 'string' ? createPublicKey(opts.app.publicKey) : opts.app.publicKey } : undefined;
  const appSlug = opts.app?.slug ?? 'nixfleet-deployer';
  /** Installation token → when it expires (ms since the epoch). */
  const installationTokens = new Map<string, number>();
  const appTokens = { issued: 0, lastExpiresAt: 0, refusedExpired: 0 };

  function issueInstallationToken(jwt: string | undefined, installationId: unknown): Reply {
    const op = 'apps/create-installation-access-token';
    if (!app) return fail(op, 404, 'Not Found');
    if (!jwt) return fail(op, 401, 'A JSON web token could not be decoded');
    try {
      verifyAppJwt(jwt, app, Math.floor(Date.now() / 1000));
    } catch (err) {
      if (err instanceof JwtRefused) return fail(op, err.status, err.message);
      throw err;
    }
    if (installationId !== app.installationId) return fail(op, 404, 'Not Found');
    const token = `ghs_${randomBytes(27).toString('base64url').replace(/[-_]/g, 'x').slice(0, 36)}`;
    const expires = Date.now() + (app.tokenTtlSeconds ?? 3600) * 1000;
    installationTokens.set(token, expires);
    appTokens.issued += 1;
    appTokens.lastExpiresAt = expires;
    return new Reply(201, {
      token,
      expires_at: new Date(expires).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      permissions: { contents: 'write', pull_requests: 'write', metadata: 'read' },
      repository_selection: 'all',
    });
  }

  const metaPath = (owner: string, name: string): string => join(reposRoot, owner, `${name}.meta.json`);
  const gitDirOf = (owner: string, name: string): string => join(reposRoot, owner, `${name}.git`);

  function saveMeta(meta: RepoMeta): void {
    const file = metaPath(meta.owner, meta.name);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(`${file}.tmp`, JSON.stringify(meta, null, 2));
    renameSync(`${file}.tmp`, file);
  }

  function loadRepo(owner: string, name: string): { meta: RepoMeta; repo: BareRepo } | undefined {
    const key = `${owner}/${name}`.toLowerCase();
    let meta = metas.get(key);
    if (!meta) {
      const file = metaPath(owner, name);
      if (!existsSync(file)) return undefined;
      meta = JSON.parse(readFileSync(file, 'utf8')) as RepoMeta;
      metas.set(key, meta);
      nextId = Math.max(nextId, meta.id + 1, ...meta.pulls.map((p) => p.id + 1));
    }
    return { meta, repo: new BareRepo(gitDirOf(meta.owner, meta.name), tmpDir) };
  }

  function mustRepo(owner: string, name: string): { meta: RepoMeta; repo: BareRepo } {
    const r = loadRepo(owner, name);
    if (!r) throw new Error(`stand-in: no repository ${owner}/${name}`);
    return r;
  }

  const botSignature = (): Signature => ({ name: user, email: `${user}@users.noreply.github.com` });
  const appSignature = (): Signature => ({ name: `${appSlug}[bot]`, email: `${opts.app?.id ?? 0}+${appSlug}[bot]@users.noreply.github.com` });
  function markSigned(meta: RepoMeta, sha: string): void {
    meta.signedCommits = [...(meta.signedCommits ?? []), sha];
    saveMeta(meta);
  }

  // ---------------------------------------------------------------- helpers for tests (a human's actions)

  async function pushCommit(owner: string, name: string, branch: string, files: FileChanges, message = 'Update files', o: { from?: string; author?: Signature } = {}): Promise<string> {
    const { repo } = mustRepo(owner, name);
    const ref = `refs/heads/${branch}`;
    for (let attempt = 0; attempt < 5; attempt++) {
      const head = (await repo.refSha(ref)) ?? (o.from ? await repo.resolveCommit(o.from) : undefined);
      const exists = (await repo.refSha(ref)) !== undefined;
      const baseTree = head ? await repo.resolveTree(head) : undefined;
      const changes: TreeChange[] = Object.entries(files).map(([path, content]) => (content === null ? { path, sha: null } : { path, content }));
      const tree = await repo.buildTree(baseTree, changes);
      const author = o.author ?? { name: 'A Human', email: 'human@example.invalid' };
      const sha = await repo.commitTree(tree, head ? [head] : [], message, author, author);
      if (await repo.casRef(ref, sha, exists && head ? head : ZERO_SHA)) return sha;
    }
    throw new Error(`stand-in: could not push to ${owner}/${name} ${branch}`);
  }

  // ---------------------------------------------------------------- webhooks (deliveries to a receiver)

  async function post(delivery: WebhookDelivery): Promise<WebhookDelivery> {
    const d = sent.get(delivery.guid);
    if (!d) throw new Error(`stand-in: no delivery ${delivery.guid}`);
    delivery.attempts += 1;
    try {
      // GitHub gives a receiver 10 s to answer.
      const res = await fetch(d.url, { method: 'POST', headers: d.headers, body: d.body, signal: AbortSignal.timeout(10_000) });
      await res.arrayBuffer().catch(() => undefined);
      delivery.status = res.status;
    } catch {
      delivery.status = 0;
    }
    return delivery;
  }

  /** Sends `event` to every hook of the repository that wants it; resolves once all are answered. */
  async function emit(meta: RepoMeta, event: string, payload: Record<string, unknown>): Promise<void> {
    const body = JSON.stringify({ ...payload, repository: repository(baseUrl, meta), sender: payload.sender ?? simpleUser(baseUrl, user) });
    const mine = hooks.filter((h) => h.owner.toLowerCase() === meta.owner.toLowerCase() && h.repo.toLowerCase() === meta.name.toLowerCase() && (h.events ?? ['pull_request', 'pull_request_review']).includes(event));
    const work = mine.map((h) => {
      const guid = randomUUID();
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        'user-agent': 'GitHub-Hookshot/standin',
        'x-github-event': event,
        'x-github-delivery': guid,
        'x-github-hook-id': String(h.id),
        'x-github-hook-installation-target-type': 'repository',
        'x-github-hook-installation-target-id': String(meta.id),
      };
      if (h.secret !== undefined) {
        headers['x-hub-signature-256'] = `sha256=${createHmac('sha256', h.secret).update(body).digest('hex')}`;
        headers['x-hub-signature'] = `sha1=${createHmac('sha1', h.secret).update(body).digest('hex')}`;
      }
      sent.set(guid, { url: h.url, headers, body });
      const delivery: WebhookDelivery = { guid, event, action: typeof payload.action === 'string' ? payload.action : undefined, url: h.url, status: 0, attempts: 0 };
      deliveries.push(delivery);
      return post(delivery);
    });
    const all = Promise.all(work);
    pendingDeliveries.add(all);
    try {
      await all;
    } finally {
      pendingDeliveries.delete(all);
    }
  }

  async function pullPayload(meta: RepoMeta, repo: BareRepo, pr: PullRecord, action: string, extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    return { action, number: pr.number, pull_request: pullRequest(baseUrl, meta, pr, await livePull(meta, repo, pr)), ...extra };
  }

  async function createRepo(owner: string, name: string, o: { defaultBranch?: string; files?: FileChanges; message?: string } = {}): Promise<string> {
    if (loadRepo(owner, name)) throw new Error(`stand-in: repository ${owner}/${name} exists`);
    const defaultBranch = o.defaultBranch ?? 'main';
    mkdirSync(join(reposRoot, owner), { recursive: true });
    await BareRepo.init(gitDirOf(owner, name), tmpDir, defaultBranch);
    const meta: RepoMeta = { id: nextId++, owner, name, defaultBranch, protectedBranches: [], createdAt: isoNow(), nextNumber: 1, pulls: [] };
    metas.set(`${owner}/${name}`.toLowerCase(), meta);
    saveMeta(meta);
    return pushCommit(owner, name, defaultBranch, o.files ?? { 'README.md': `# ${name}\n` }, o.message ?? 'Initial commit');
  }

  async function livePull(meta: RepoMeta, repo: BareRepo, pr: PullRecord): Promise<PullLive> {
    if (pr.state === 'closed' && pr.headSha && pr.baseSha) return { headSha: pr.headSha, baseSha: pr.baseSha, mergeable: null, commits: pr.commits };
    const headSha = (await repo.refSha(`refs/heads/${pr.headRef}`)) ?? pr.headSha ?? ZERO_SHA;
    const baseSha = (await repo.refSha(`refs/heads/${pr.baseRef}`)) ?? pr.baseSha ?? ZERO_SHA;
    const both = headSha !== ZERO_SHA && baseSha !== ZERO_SHA;
    const mergeable = both ? (await repo.mergeTrees(baseSha, headSha)) !== undefined : null;
    // An open pull request's count follows its head (a push, or main merged into it, changes it), merge commits included.
    const commits = both ? await repo.countCommits(`${baseSha}..${headSha}`) : pr.commits;
    return { headSha, baseSha, mergeable, commits };
  }

  async function createPull(meta: RepoMeta, repo: BareRepo, title: string, head: string, base: string, body: string | null, by: string): Promise<Reply> {
    const op = 'pulls/create';
    const headRef = head.includes(':') ? head.slice(head.indexOf(':') + 1) : head;
    const headSha = await repo.refSha(`refs/heads/${headRef}`);
    const baseSha = await repo.refSha(`refs/heads/${base}`);
    if (!headSha) return fail(op, 422, 'Validation Failed', { errors: [{ resource: 'PullRequest', field: 'head', code: 'invalid' }] });
    if (!baseSha) return fail(op, 422, 'Validation Failed', { errors: [{ resource: 'PullRequest', field: 'base', code: 'invalid' }] });
    if (meta.pulls.some((p) => p.state === 'open' && p.headRef === headRef && p.baseRef === base)) {
      return fail(op, 422, 'Validation Failed', { errors: [{ resource: 'PullRequest', code: 'custom', message: `A pull request already exists for ${meta.owner}:${headRef}.` }] });
    }
    const commits = await repo.countCommits(`${baseSha}..${headSha}`);
    if (commits === 0) return fail(op, 422, 'Validation Failed', { errors: [{ resource: 'PullRequest', code: 'custom', message: `No commits between ${base} and ${headRef}` }] });
    const now = isoNow();
    const pr: PullRecord = {
      number: meta.nextNumber++,
      id: nextId++,
      title,
      body,
      user: by,
      state: 'open',
      headRef,
      baseRef: base,
      merged: false,
      mergedAt: null,
      mergeCommitSha: null,
      mergedBy: null,
      commits,
      createdAt: now,
      updatedAt: now,
      closedAt: null,
    };
    meta.pulls.push(pr);
    saveMeta(meta);
    const opened = emit(meta, 'pull_request', await pullPayload(meta, repo, pr, 'opened', { sender: simpleUser(baseUrl, by) }));
    lastOpened = opened;
    return new Reply(201, pullRequest(baseUrl, meta, pr, await livePull(meta, repo, pr)), { location: `${baseUrl}/repos/${meta.owner}/${meta.name}/pulls/${pr.number}` });
  }

  // ---------------------------------------------------------------- REST handlers

  async function mergePull(c: Ctx): Promise<Reply> {
    const op = 'pulls/merge';
    const pr = c.meta.pulls.find((p) => p.number === c.params.pull_number);
    if (!pr) return fail(op, 404, 'Not Found');
    if (pr.state !== 'open') return fail(op, 405, 'Pull Request is not mergeable');
    const ref = `refs/heads/${pr.baseRef}`;
    const body = c.body ?? {};
    for (let attempt = 0; attempt < 5; attempt++) {
      const headSha = await c.repo.refSha(`refs/heads/${pr.headRef}`);
      const baseSha = await c.repo.refSha(ref);
      if (!headSha || !baseSha) return fail(op, 405, 'Pull Request is not mergeable');
      if (typeof body.sha === 'string' && body.sha !== headSha) return fail(op, 409, 'Head branch was modified. Review and try the merge again.');
      const method = (body.merge_method as 'merge' | 'squash' | 'rebase' | undefined) ?? 'merge';
      const allowed = { merge: c.meta.allowMergeCommit, squash: c.meta.allowSquashMerge, rebase: c.meta.allowRebaseMerge }[method] ?? true;
      if (!allowed) return fail(op, 405, METHOD_NOT_ALLOWED[method]);
      const merger = botSignature();
      let mergeSha: string;
      if (method === 'rebase') {
        const own = await c.repo.revList(['--reverse', '--no-merges', `${baseSha}..${headSha}`]);
        let tip = baseSha;
        for (const commit of own) {
          const tree = await c.repo.replayTree(commit, tip);
          if (!tree) return fail(op, 405, 'Pull Request is not mergeable');
          const info = await c.repo.commit(commit);
          tip = await c.repo.commitTree(tree, [tip], info?.message ?? '', info ? { ...info.author, date: gitDate(info.author.date) } : merger);
        }
        mergeSha = tip;
      } else {
        const tree = await c.repo.mergeTrees(baseSha, headSha);
        if (!tree) return fail(op, 405, 'Pull Request is not mergeable');
        if (method === 'squash') {
          const subjects = (await c.repo.revList(['--reverse', `${baseSha}..${headSha}`])).length;
          const title = (body.commit_title as string | undefined) ?? `${pr.title} (#${pr.number})`;
          const msg = (body.commit_message as string | undefined) ?? `${subjects} commit(s) squashed`;
          mergeSha = await c.repo.commitTree(tree, [baseSha], `${title}\n\n${msg}\n`, merger);
        } else {
          const title = (body.commit_title as string | undefined) ?? `Merge pull request #${pr.number} from ${c.meta.owner}/${pr.headRef}`;
          const msg = (body.commit_message as string | undefined) ?? pr.title;
          mergeSha = await c.repo.commitTree(tree, [baseSha, headSha], `${title}\n\n${msg}\n`, merger);
        }
      }
      if (!(await c.repo.casRef(ref, mergeSha, baseSha))) continue; // the base moved under us: merge again
      const now = isoNow();
      // The count is frozen at the merge (merge commits included, as GitHub counts them).
      const commits = await c.repo.countCommits(`${baseSha}..${headSha}`);
      Object.assign(pr, { state: 'closed', merged: true, mergedAt: now, closedAt: now, updatedAt: now, mergeCommitSha: mergeSha, mergedBy: user, mergeMethod: method, headSha, baseSha, commits });
      saveMeta(c.meta);
      return new Reply(200, { sha: mergeSha, merged: true, message: 'Pull Request successfully merged' });
    }
    return fail(op, 405, 'Base branch was modified. Review and try the merge again.');
  }

  /** A revision as compare accepts it: a sha, a branch, or `owner:branch` of this repository. */
  async function resolveRevision(c: Ctx, rev: string): Promise<string | undefined> {
    const colon = rev.indexOf(':');
    if (colon >= 0) {
      if (rev.slice(0, colon).toLowerCase() !== c.meta.owner.toLowerCase()) return undefined;
      rev = rev.slice(colon + 1);
    }
    if (/^[0-9a-f]{7,40}$/.test(rev)) {
      const sha = await c.repo.resolveCommit(rev);
      if (sha) return sha;
    }
    return (await c.repo.refSha(`refs/heads/${rev}`)) ?? (await c.repo.refSha(`refs/tags/${rev}`));
  }

  /** The files that differ between two commits, as compare and pulls/list-files list them ("diff-entry"). */
  async function diffFiles(c: Ctx, from: string, to: string): Promise<Array<Record<string, unknown>>> {
    const raw = (await git(c.repo.gitDir, ['diff-tree', '-r', '-z', '--no-renames', '--raw', from, to])).split('\0').filter(Boolean);
    const numstat = (await git(c.repo.gitDir, ['diff-tree', '-r', '-z', '--no-renames', '--numstat', from, to])).split('\0').filter(Boolean);
    const counts = new Map<string, { additions: number; deletions: number }>();
    for (const line of numstat) {
      const [a, d, ...rest] = line.split('\t');
      counts.set(rest.join('\t'), { additions: Number(a) || 0, deletions: Number(d) || 0 });
    }
    const statusOf: Record<string, string> = { A: 'added', D: 'removed', M: 'modified', T: 'changed' };
    const files = [];
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const [, , oldSha, newSha, code] = (raw[i] as string).replace(/^:/, '').split(' ');
      const filename = raw[i + 1] as string;
      const n = counts.get(filename) ?? { additions: 0, deletions: 0 };
      files.push(diffEntry(baseUrl, c.meta, to, { filename, status: statusOf[code?.[0] ?? 'M'] ?? 'modified', sha: (code === 'D' ? oldSha : newSha) ?? ZERO_SHA, ...n }));
    }
    return files;
  }

  async function compareCommits(c: Ctx, baseRev: string, headRev: string): Promise<Reply> {
    const op = 'repos/compare-commits';
    const baseSha = await resolveRevision(c, baseRev);
    const headSha = await resolveRevision(c, headRev);
    if (!baseSha || !headSha) return fail(op, 404, 'Not Found');
    const mb = await gitRaw(c.repo.gitDir, ['merge-base', baseSha, headSha]);
    const mergeBase = mb.code === 0 ? mb.stdout.trim() : '';
    if (!mergeBase) return fail(op, 404, `No common ancestor between ${baseRev} and ${headRev}.`);
    const aheadBy = await c.repo.countCommits(`${baseSha}..${headSha}`);
    const behindBy = await c.repo.countCommits(`${headSha}..${baseSha}`);
    const status = baseSha === headSha ? 'identical' : behindBy === 0 ? 'ahead' : aheadBy === 0 ? 'behind' : 'diverged';
    const commits = [];
    const perPage = Math.min(Number(c.params.per_page ?? 250), 250);
    const page = Number(c.params.page ?? 1);
    const listed = (await c.repo.revList(['--reverse', '--topo-order', `${baseSha}..${headSha}`])).slice((page - 1) * perPage, page * perPage);
    for (const sha of listed) {
      const info = await c.repo.commit(sha);
      if (info) commits.push(listedCommit(baseUrl, c.meta, info));
    }
    const files = await diffFiles(c, mergeBase, headSha);
    const baseInfo = await c.repo.commit(baseSha);
    const mbInfo = await c.repo.commit(mergeBase);
    const html = `${baseUrl}/${c.meta.owner}/${c.meta.name}/compare/${baseRev}...${headRev}`;
    return new Reply(200, {
      url: `${baseUrl}/repos/${c.meta.owner}/${c.meta.name}/compare/${baseRev}...${headRev}`,
      html_url: html,
      permalink_url: `${baseUrl}/${c.meta.owner}/${c.meta.name}/compare/${c.meta.owner}:${baseSha.slice(0, 7)}...${c.meta.owner}:${headSha.slice(0, 7)}`,
      diff_url: `${html}.diff`,
      patch_url: `${html}.patch`,
      base_commit: listedCommit(baseUrl, c.meta, baseInfo!),
      merge_base_commit: listedCommit(baseUrl, c.meta, mbInfo!),
      status,
      ahead_by: aheadBy,
      behind_by: behindBy,
      total_commits: aheadBy,
      commits,
      files,
    });
  }

  async function updateRef(c: Ctx, name: string, refParam: string): Promise<Reply> {
    const op = 'git/update-ref';
    const ref = refParam.startsWith('refs/') ? refParam : `refs/${refParam}`;
    const next = c.body.sha as string;
    const force = c.body.force === true;
    let current = await c.repo.refSha(ref);
    if (!current) return fail(op, 422, 'Reference does not exist');
    if (!(await c.repo.resolveCommit(next)) || !/^[0-9a-f]{40}$/.test(next)) return fail(op, 422, 'Object does not exist');
    const branch = ref.startsWith('refs/heads/') ? ref.slice('refs/heads/'.length) : undefined;
    if (branch !== undefined && c.meta.signedBranches?.includes(branch)) {
      const added = await c.repo.revList([`${current}..${next}`]);
      if (added.some((sha) => !c.meta.signedCommits?.includes(sha))) {
        return fail(op, 422, `Protected branch update failed for ${ref}.\n\nCommits must have verified signatures.`, { documentation_url: PROTECTED_DOCS });
      }
    }
    const protectedBranch = branch !== undefined && c.meta.protectedBranches.includes(branch);
    if (protectedBranch) {
      // Direct updates of a protected branch are refused (pull requests required).
      return fail(op, 422, `Protected branch update failed for ${ref}.`, { documentation_url: PROTECTED_DOCS });
    }
    for (let attempt = 0; attempt < 10; attempt++) {
      if (!force && !(await c.repo.isAncestor(current, next))) return fail(op, 422, 'Update is not a fast forward');
      const raceKey = `${c.meta.owner}/${name}/${branch ?? ''}`.toLowerCase();
      const race = races.get(raceKey);
      if (race && branch) {
        races.delete(raceKey);
        await pushCommit(c.meta.owner, c.meta.name, branch, race.files, race.message);
      }
      if (await c.repo.casRef(ref, next, current)) return new Reply(200, gitRef(baseUrl, c.meta, ref, next));
      const now = await c.repo.refSha(ref);
      if (!now) return fail(op, 422, 'Reference does not exist');
      current = now;
    }
    return fail(op, 422, 'Reference update failed');
  }

  async function handle(m: MatchedOperation, c: Ctx): Promise<Reply> {
    const op = m.operationId;
    const p = c.params;
    const b = c.body;
    switch (op) {
      case 'pulls/get': {
        const pr = c.meta.pulls.find((x) => x.number === p.pull_number);
        if (!pr) return fail(op, 404, 'Not Found');
        return new Reply(200, pullRequest(baseUrl, c.meta, pr, await livePull(c.meta, c.repo, pr)));
      }
      case 'pulls/list': {
        const state = (p.state as string | undefined) ?? 'open';
        let list = c.meta.pulls.filter((x) => state === 'all' || x.state === state);
        if (typeof p.head === 'string') {
          const [owner, branch] = p.head.includes(':') ? p.head.split(':', 2) : [c.meta.owner, p.head];
          list = list.filter((x) => owner?.toLowerCase() === c.meta.owner.toLowerCase() && x.headRef === branch);
        }
        if (typeof p.base === 'string') list = list.filter((x) => x.baseRef === p.base);
        const sort = (p.sort as string | undefined) ?? 'created';
        const direction = (p.direction as string | undefined) ?? (sort === 'created' ? 'desc' : 'asc');
        list = [...list].sort((a, z) => (sort === 'updated' ? a.updatedAt.localeCompare(z.updatedAt) : a.number - z.number) * (direction === 'desc' ? -1 : 1));
        const perPage = Math.min(Number(p.per_page ?? 30), 100);
        const page = Number(p.page ?? 1);
        const slice = list.slice((page - 1) * perPage, page * perPage);
        const items = [];
        for (const pr of slice) items.push(pullRequestSimple(baseUrl, c.meta, pr, await livePull(c.meta, c.repo, pr)));
        return new Reply(200, items);
      }
      case 'repos/get':
        return new Reply(200, fullRepository(baseUrl, c.meta));
      case 'pulls/list-commits': {
        const pr = c.meta.pulls.find((x) => x.number === p.pull_number);
        if (!pr) return fail(op, 404, 'Not Found');
        const live = await livePull(c.meta, c.repo, pr);
        // The pull request's own commits, oldest first (as of its merge once merged); at most 250, as on GitHub.
        const all = (await c.repo.revList(['--reverse', '--topo-order', `${live.baseSha}..${live.headSha}`])).slice(0, 250);
        const perPage = Math.min(Number(p.per_page ?? 30), 100);
        const page = Number(p.page ?? 1);
        const items = [];
        for (const sha of all.slice((page - 1) * perPage, page * perPage)) {
          const info = await c.repo.commit(sha);
          if (info) items.push(listedCommit(baseUrl, c.meta, info));
        }
        return new Reply(200, items);
      }
      case 'pulls/list-files': {
        const pr = c.meta.pulls.find((x) => x.number === p.pull_number);
        if (!pr) return fail(op, 404, 'Not Found');
        const live = await livePull(c.meta, c.repo, pr);
        const mb = await gitRaw(c.repo.gitDir, ['merge-base', live.baseSha, live.headSha]);
        const files = await diffFiles(c, mb.code === 0 ? mb.stdout.trim() : live.baseSha, live.headSha);
        const perPage = Math.min(Number(p.per_page ?? 30), 100);
        const page = Number(p.page ?? 1);
        // GitHub lists at most 3000 files.
        return new Reply(200, files.slice(0, 3000).slice((page - 1) * perPage, page * perPage));
      }
      case 'repos/compare-commits':
        return compareCommits(c, String(p.base), String(p.head));
      case 'pulls/create':
        return createPull(c.meta, c.repo, (b.title as string | undefined) ?? '', b.head as string, b.base as string, (b.body as string | undefined) ?? null, user);
      case 'pulls/merge':
        return mergePull(c);
      case 'git/get-commit': {
        const wanted = String(p.commit_sha);
        const full = /^[0-9a-f]{4,40}$/.test(wanted) ? await c.repo.resolveCommit(wanted) : undefined;
        const info = full ? await c.repo.commit(full) : undefined;
        if (!info) return fail(op, 404, 'Not Found');
        return new Reply(200, gitCommit(baseUrl, c.meta, info));
      }
      case 'git/create-commit': {
        const tree = b.tree as string;
        if ((await c.repo.objectType(tree)) !== 'tree') return fail(op, 422, 'Tree SHA does not exist');
        const parents = (b.parents as string[] | undefined) ?? [];
        for (const parent of parents) {
          if (!/^[0-9a-f]{40}$/.test(parent) || (await c.repo.objectType(parent)) !== 'commit') return fail(op, 422, 'Parent SHA does not exist or is not a commit object');
        }
        const a = b.author as { name: string; email: string; date?: string } | undefined;
        const cm = b.committer as { name?: string; email?: string; date?: string } | undefined;
        const author: Signature = a ? { name: a.name, email: a.email, date: gitDate(a.date) } : c.asApp ? appSignature() : botSignature();
        const committer: Signature = cm?.name && cm.email ? { name: cm.name, email: cm.email, date: gitDate(cm.date) } : author;
        const sha = await c.repo.commitTree(tree, parents, b.message as string, author, committer);
        // GitHub signs an app's commit when it chooses neither author nor committer.
        if (c.asApp && !a && !cm) markSigned(c.meta, sha);
        const info = await c.repo.commit(sha);
        return new Reply(201, gitCommit(baseUrl, c.meta, info!), { location: `${baseUrl}/repos/${c.meta.owner}/${c.meta.name}/git/commits/${sha}` });
      }
      case 'git/get-tree': {
        const sha = await c.repo.resolveTree(String(p.tree_sha));
        if (!sha) return fail(op, 404, 'Not Found');
        const entries = await c.repo.lsTree(sha, p.recursive !== undefined);
        const api = `${baseUrl}/repos/${c.meta.owner}/${c.meta.name}`;
        return new Reply(200, {
          sha,
          url: `${api}/git/trees/${sha}`,
          tree: entries.map((e) => ({ ...e, url: e.type === 'blob' ? `${api}/git/blobs/${e.sha}` : e.type === 'tree' ? `${api}/git/trees/${e.sha}` : undefined })),
          truncated: false,
        });
      }
      case 'git/create-tree': {
        let baseTree: string | undefined;
        if (typeof b.base_tree === 'string') {
          baseTree = await c.repo.resolveTree(b.base_tree);
          if (!baseTree) return fail(op, 422, 'base_tree is not a valid tree oid');
        }
        try {
          const sha = await c.repo.buildTree(baseTree, b.tree as TreeChange[]);
          const entries = await c.repo.lsTree(sha, false);
          const api = `${baseUrl}/repos/${c.meta.owner}/${c.meta.name}`;
          return new Reply(
            201,
            { sha, url: `${api}/git/trees/${sha}`, tree: entries.map((e) => ({ ...e, url: `${api}/git/${e.type === 'tree' ? 'trees' : 'blobs'}/${e.sha}` })), truncated: false },
            { location: `${api}/git/trees/${sha}` },
          );
        } catch (err) {
          if (err instanceof TreeChangeError) return fail(op, 422, err.message);
          throw err;
        }
      }
      case 'git/get-ref': {
        const ref = `refs/${String(p.ref)}`;
        const sha = await c.repo.refSha(ref);
        if (!sha || !(await c.repo.resolveCommit(ref))) return fail(op, 404, 'Not Found');
        return new Reply(200, gitRef(baseUrl, c.meta, ref, sha));
      }
      case 'git/create-ref': {
        const ref = b.ref as string;
        if (!ref.startsWith('refs/') || ref.split('/').length < 3) return fail(op, 422, "Reference name must start with 'refs/' and have at least two slashes.");
        const sha = b.sha as string;
        if (!/^[0-9a-f]{40}$/.test(sha) || !(await c.repo.resolveCommit(sha))) return fail(op, 422, 'Object does not exist');
        if (!(await c.repo.casRef(ref, sha, ZERO_SHA))) return fail(op, 422, 'Reference already exists');
        return new Reply(201, gitRef(baseUrl, c.meta, ref, sha), { location: `${baseUrl}/repos/${c.meta.owner}/${c.meta.name}/git/${ref}` });
      }
      case 'git/update-ref':
        return updateRef(c, c.meta.name, String(p.ref));
      case 'repos/list-commits': {
        const start = (p.sha as string | undefined) ?? c.meta.defaultBranch;
        const tip = (await c.repo.resolveCommit(start)) ?? (await c.repo.resolveCommit(`refs/heads/${start}`));
        if (!tip) return fail(op, 404, 'Not Found');
        const perPage = Math.min(Number(p.per_page ?? 30), 100);
        const page = Number(p.page ?? 1);
        const shas = await c.repo.revList(['--topo-order', `--skip=${(page - 1) * perPage}`, `--max-count=${perPage}`, tip, ...(typeof p.path === 'string' ? ['--', p.path] : [])]);
        const items = [];
        for (const sha of shas) {
          const info = await c.repo.commit(sha);
          if (info) items.push(listedCommit(baseUrl, c.meta, info));
        }
        return new Reply(200, items);
      }
      default:
        return fail(op, 404, 'Not Found');
    }
  }

  // ---------------------------------------------------------------- HTTP plumbing

  function matchFault(method: string, path: string, operationId: string | undefined): Fault | undefined {
    for (const f of faults) {
      if (f.remaining <= 0) continue;
      if (f.operation !== undefined && f.operation !== operationId) continue;
      if (f.method !== undefined && f.method.toUpperCase() !== method) continue;
      if (f.path !== undefined && !f.path.test(path)) continue;
      f.remaining--;
      return f;
    }
    return undefined;
  }

  function faultReply(f: Fault, operationId: string | undefined): Reply {
    const headers: Record<string, string> = {};
    const defaults: Record<number, string> = {
      403: 'API rate limit exceeded for user ID 1.',
      429: 'API rate limit exceeded for user ID 1.',
      405: 'Pull Request is not mergeable',
      409: 'Head branch was modified. Review and try the merge again.',
      422: 'Validation Failed',
    };
    if (f.status === 403 || f.status === 429) {
      const wait = f.retryAfterSeconds === undefined ? 1 : f.retryAfterSeconds;
      if (wait !== null) headers['retry-after'] = String(wait);
      headers['x-ratelimit-limit'] = '5000';
      headers['x-ratelimit-remaining'] = '0';
      headers['x-ratelimit-used'] = '5000';
      headers['x-ratelimit-resource'] = 'core';
      headers['x-ratelimit-reset'] = String(Math.ceil(Date.now() / 1000) + (wait ?? 1));
    }
    Object.assign(headers, f.headers ?? {});
    const message = f.message ?? defaults[f.status] ?? (f.status >= 500 ? 'Server Error' : 'Error');
    return new Reply(f.status, f.body ?? errorBody(operationId, f.status, message), headers);
  }

  function send(res: ServerResponse, reply: Reply): void {
    const payload = reply.body === undefined ? '' : JSON.stringify(reply.body);
    res.writeHead(reply.status, {
      'content-type': 'application/json; charset=utf-8',
      'x-github-media-type': 'github.v3; format=json',
      'x-github-api-version-selected': '2022-11-28',
      'x-ratelimit-limit': '5000',
      'x-ratelimit-remaining': '4999',
      'x-ratelimit-reset': String(Math.ceil(Date.now() / 1000) + 3600),
      'x-ratelimit-resource': 'core',
      'x-github-request-id': `STANDIN:${requests.length}`,
      ...reply.headers,
      'content-length': Buffer.byteLength(payload),
    });
    res.end(payload);
  }

  function readBody(req: IncomingMessage): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      req.on('data', (b: Buffer) => chunks.push(b));
      req.on('end', () => resolve(Buffer.concat(chunks)));
      req.on('error', reject);
    });
  }

  /** git smart HTTP through `git http-backend` as CGI (read-only: clone and fetch). */
  function serveGit(req: IncomingMessage, res: ServerResponse, url: URL): void {
    const pathInfo = url.pathname.slice('/git'.length);
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      GIT_PROJECT_ROOT: reposRoot,
      GIT_HTTP_EXPORT_ALL: '1',
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
      PATH_INFO: decodeURIComponent(pathInfo),
      QUERY_STRING: url.search.replace(/^\?/, ''),
      REQUEST_METHOD: req.method ?? 'GET',
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
      SERVER_PROTOCOL: 'HTTP/1.1',
      GATEWAY_INTERFACE: 'CGI/1.1',
    };
    if (req.headers['content-length']) env.CONTENT_LENGTH = req.headers['content-length'];
    if (req.headers['content-encoding']) env.HTTP_CONTENT_ENCODING = req.headers['content-encoding'];
    const proto = req.headers['git-protocol'];
    if (typeof proto === 'string') env.GIT_PROTOCOL = proto;
    const child = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let head = Buffer.alloc(0);
    let headerDone = false;
    let status = 200;
    child.stdout.on('data', (chunk: Buffer) => {
      if (headerDone) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      let end = head.indexOf('\r\n\r\n');
      let sepLen = 4;
      if (end < 0) {
        end = head.indexOf('\n\n');
        sepLen = 2;
      }
      if (end < 0) return;
      headerDone = true;
      const headers: Record<string, string> = {};
      for (const line of head.subarray(0, end).toString('latin1').split(/\r?\n/)) {
        const i = line.indexOf(':');
        if (i < 0) continue;
        const k = line.slice(0, i).trim();
        const v = line.slice(i + 1).trim();
        if (k.toLowerCase() === 'status') status = Number(v.split(' ')[0]);
        else headers[k] = v;
      }
      res.writeHead(status, headers);
      res.write(head.subarray(end + sepLen));
    });
    child.stderr.on('data', () => undefined);
    child.on('close', () => {
      if (!headerDone) res.writeHead(502).end();
      else res.end();
      requests.push({ method: req.method ?? 'GET', path: url.pathname, status });
    });
    req.pipe(child.stdin);
    child.stdin.on('error', () => undefined);
  }

  async function onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const path = decodeURIComponent(url.pathname);
    if (path.startsWith('/git/')) return serveGit(req, res, url);
    const entry: RequestLogEntry = { method, path, status: 0 };
    let reply: Reply;
    let m: MatchedOperation | undefined;
    try {
      const auth = req.headers.authorization ?? '';
      const token = /^(?:token|bearer)\s+(.+)$/i.exec(auth)?.[1];
      const raw = await readBody(req);
      m = validator.match(method, url.pathname);
      if (m) entry.operationId = m.operationId;
      const tokenExpires = token ? installationTokens.get(token) : undefined;
      const asApp = tokenExpires !== undefined;
      const appRoute = m?.operationId === 'apps/create-installation-access-token';
      if (!token) reply = fail(m?.operationId, 401, 'Requires authentication');
      else if (!appRoute && tokenExpires !== undefined && tokenExpires <= Date.now()) {
        appTokens.refusedExpired += 1;
        reply = fail(m?.operationId, 401, 'Bad credentials');
      } else if (!appRoute && !asApp && (opts.token !== undefined || app !== undefined) && token !== opts.token) reply = fail(m?.operationId, 401, 'Bad credentials');
      else if (!m) {
        validationFailures.push({ direction: 'request', operationId: '(unknown route)', method, path, errors: [`no operation in the extract matches ${method} ${path}`] });
        reply = fail(undefined, 404, 'Not Found');
      } else {
        let body: unknown;
        let parseError = false;
        if (raw.length > 0) {
          try {
            body = JSON.parse(raw.toString('utf8'));
          } catch {
            parseError = true;
          }
        }
        if (parseError) reply = fail(m.operationId, 400, 'Problems parsing JSON');
        else {
          const params: Record<string, unknown> = { ...m.pathParams };
          for (const [k, v] of url.searchParams) params[k] = v;
          const errors = validator.validateRequest(m, params, body);
          if (errors.length > 0) {
            validationFailures.push({ direction: 'request', operationId: m.operationId, method, path, errors: formatErrors(errors) });
            reply = fail(m.operationId, 422, describeRequestErrors(errors));
          } else {
            const fault = matchFault(method, path, m.operationId);
            if (fault) {
              entry.fault = true;
              reply = faultReply(fault, m.operationId);
            } else if (appRoute) {
              reply = issueInstallationToken(token, Number(params.installation_id));
            } else {
              const owner = String(params.owner);
              const name = String(params.repo);
              const r = loadRepo(owner, name);
              reply = r ? await handle(m, { ...r, params, body: (body ?? {}) as Record<string, unknown>, asApp }) : fail(m.operationId, 404, 'Not Found');
            }
          }
        }
      }
    } catch (err) {
      reply = fail(m?.operationId, 500, `stand-in error: ${(err as Error).message}`);
    }
    if (m) {
      const errors = validator.validateResponse(m, reply.status, reply.body);
      if (errors && errors.length > 0) {
        validationFailures.push({ direction: 'response', operationId: m.operationId, method, path, status: reply.status, errors: formatErrors(errors) });
      }
    }
    entry.status = reply.status;
    requests.push(entry);
    opts.log?.(`${method} ${path} ${reply.status}${entry.fault ? ' (injected)' : ''}`);
    send(res, reply);
  }

  const server: Server = createServer((req, res) => {
    onRequest(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    baseUrl,
    dataDir,
    gitUrl: (owner, repo) => `${baseUrl}/git/${owner}/${repo}.git`,
    createRepo,
    pushCommit,
    async openPullRequest(owner, name, o) {
      const { meta, repo } = mustRepo(owner, name);
      const base = o.base ?? meta.defaultBranch;
      const baseSha = await repo.refSha(`refs/heads/${base}`);
      if (!baseSha) throw new Error(`stand-in: no branch ${base}`);
      const commits = o.commits ?? [{ files: o.files ?? {}, message: o.title }];
      let headSha = baseSha;
      for (const commit of commits) headSha = await pushCommit(owner, name, o.headBranch, commit.files, commit.message, { from: baseSha });
      const reply = await createPull(meta, repo, o.title, o.headBranch, base, o.body ?? null, o.user ?? 'flake-updater[bot]');
      if (reply.status !== 201) throw new Error(`stand-in: could not open pull request: ${JSON.stringify(reply.body)}`);
      await lastOpened;
      return { number: (reply.body as { number: number }).number, headSha };
    },
    branchHead: async (owner, name, branch) => mustRepo(owner, name).repo.refSha(`refs/heads/${branch}`),
    readFile: async (owner, name, ref, path) => mustRepo(owner, name).repo.readBlob(ref, path),
    async log(owner, name, ref, max = 50) {
      const { repo } = mustRepo(owner, name);
      const shas = await repo.revList([`--max-count=${max}`, '--first-parent', ref]);
      const out: CommitSummary[] = [];
      for (const sha of shas) {
        const info = await repo.commit(sha);
        if (info) out.push({ sha, parents: info.parents, subject: info.message.split('\n')[0] ?? '', message: info.message });
      }
      return out;
    },
    pulls: (owner, name) => mustRepo(owner, name).meta.pulls.map((p) => ({ ...p })),
    async branches(owner, name) {
      const { repo } = mustRepo(owner, name);
      const out = await git(repo.gitDir, ['for-each-ref', '--format=%(refname:short)', 'refs/heads/']);
      return out.split('\n').filter(Boolean);
    },
    inject(fault) {
      faults.push({ ...fault, remaining: fault.times ?? 1 });
    },
    clearFaults() {
      faults.length = 0;
    },
    racePushOnce(owner, name, branch, files, message = 'Concurrent push') {
      races.set(`${owner}/${name}/${branch}`.toLowerCase(), { files, message });
    },
    addWebhook(owner, name, hook) {
      mustRepo(owner, name);
      hooks.push({ ...hook, id: 500_000 + hooks.length, owner, repo: name });
    },
    async addLabel(owner, name, number, labelName) {
      const { meta, repo } = mustRepo(owner, name);
      const pr = meta.pulls.find((x) => x.number === number);
      if (!pr) throw new Error(`stand-in: no pull request #${number}`);
      if (!(pr.labels ?? []).includes(labelName)) pr.labels = [...(pr.labels ?? []), labelName];
      pr.updatedAt = isoNow();
      saveMeta(meta);
      await emit(meta, 'pull_request', await pullPayload(meta, repo, pr, 'labeled', { label: label(baseUrl, meta, labelName) }));
    },
    async submitReview(owner, name, number, review) {
      const { meta, repo } = mustRepo(owner, name);
      const pr = meta.pulls.find((x) => x.number === number);
      if (!pr) throw new Error(`stand-in: no pull request #${number}`);
      const payload = await pullPayload(meta, repo, pr, 'submitted');
      const head = (payload.pull_request as { head: { sha: string } }).head.sha;
      const id = nextReviewId++;
      const html = `${baseUrl}/${meta.owner}/${meta.name}/pull/${pr.number}`;
      await emit(meta, 'pull_request_review', {
        ...payload,
        sender: simpleUser(baseUrl, review.user),
        review: {
          id,
          node_id: Buffer.from(`PullRequestReview:${id}`).toString('base64'),
          user: simpleUser(baseUrl, review.user),
          body: review.body ?? null,
          commit_id: head,
          submitted_at: isoNow(),
          // Webhook payloads spell the state in lower case (the REST API in upper case).
          state: review.state.toLowerCase(),
          html_url: `${html}#pullrequestreview-${id}`,
          pull_request_url: `${baseUrl}/repos/${meta.owner}/${meta.name}/pulls/${pr.number}`,
          author_association: 'MEMBER',
          _links: { html: { href: `${html}#pullrequestreview-${id}` }, pull_request: { href: `${baseUrl}/repos/${meta.owner}/${meta.name}/pulls/${pr.number}` } },
        },
      });
    },
    async redeliver(guid) {
      const d = deliveries.find((x) => x.guid === guid);
      if (!d) throw new Error(`stand-in: no delivery ${guid}`);
      return post(d);
    },
    deliveries,
    setMergeSettings(owner, name, settings) {
      const { meta } = mustRepo(owner, name);
      const next = {
        allowMergeCommit: settings.allowMergeCommit ?? meta.allowMergeCommit ?? true,
        allowSquashMerge: settings.allowSquashMerge ?? meta.allowSquashMerge ?? true,
        allowRebaseMerge: settings.allowRebaseMerge ?? meta.allowRebaseMerge ?? true,
      };
      if (!next.allowMergeCommit && !next.allowSquashMerge && !next.allowRebaseMerge) {
        throw new Error('stand-in: at least one merge method must be allowed (GitHub refuses to turn all three off)');
      }
      Object.assign(meta, next);
      saveMeta(meta);
    },
    async forcePush(owner, name, branch, sha) {
      const { repo } = mustRepo(owner, name);
      const commit = await repo.resolveCommit(sha);
      if (!commit) throw new Error(`stand-in: no commit ${sha}`);
      await git(repo.gitDir, ['update-ref', `refs/heads/${branch}`, commit]);
    },
    protectBranch(owner, name, branch) {
      const { meta } = mustRepo(owner, name);
      if (!meta.protectedBranches.includes(branch)) meta.protectedBranches.push(branch);
      saveMeta(meta);
    },
    requests,
    validationFailures,
    requireSignedCommits(owner, name, branch) {
      const { meta } = mustRepo(owner, name);
      if (!meta.signedBranches?.includes(branch)) meta.signedBranches = [...(meta.signedBranches ?? []), branch];
      saveMeta(meta);
    },
    appTokens,
    countRequests: (method, path) => requests.filter((r) => r.method === method.toUpperCase() && path.test(r.path)).length,
    async stop() {
      await Promise.allSettled([...pendingDeliveries]);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (ownDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
