/**
 * The whole stand-in world in one call, for the tests and the demo: a git-backed GitHub stand-in
 * holding the fleet flake, a stand-in fleet of sshd + Nix hosts that build that flake over git smart
 * HTTP, and the helpers to open a flake.lock update pull request and describe the fleet as a fleet file.
 */
import { generateKeyPairSync } from 'node:crypto';
import pino from 'pino';
import type { ActivityDeps } from '../activities';
import type { FleetFile } from '../src/schemas/fleet.schema';
import { createGitHub } from '../src/github';
import { DEFAULT_FLEET_TIMEOUTS } from '../src/schemas/fleet.schema';
import { fleetFlakeFiles, fleetFlakeLock, startFleet, type StandinFleet, type StandinHostSpec } from './fleet';
import { startGitHubStandin, type GitHubStandin } from './github';

export interface WorldOptions {
  hosts: StandinHostSpec[];
  owner?: string;
  repo?: string;
  branch?: string;
  /** Version marker of the flake.lock on the branch at start. */
  initialVersion?: string;
  dataDir?: string;
  /**
   * Authenticate as a GitHub App (a key pair made here) instead of with a token: the stand-in then
   * accepts only installation tokens, which expire after tokenTtlSeconds (default GitHub's hour).
   */
  githubApp?: { tokenTtlSeconds?: number };
  /** How long each stand-in host may take to start (startFleet's startTimeoutMs; default 10 s). */
  fleetStartTimeoutMs?: number;
}

export interface World {
  github: GitHubStandin;
  fleet: StandinFleet;
  owner: string;
  repo: string;
  branch: string;
  token: string;
  /** The app, when the world was started with githubApp. */
  app?: { appId: number; installationId: number; privateKey: string };
  /** `git+http://…/git/{owner}/{repo}.git?ref=main&rev={sha}` */
  flakeRefTemplate: string;
  /** Opens a pull request that bumps flake.lock to `version` (what a lock-update bot does). */
  openLockUpdate(version: string, opts?: { title?: string; kernel?: string }): Promise<{ number: number; headSha: string }>;
  /** The fleet as a fleet file (hosts in the given order). */
  fleetFile(onFailure?: FleetFile['onFailure'], order?: string[], rollout?: FleetFile['rollout']): FleetFile;
  activityDeps(logger?: pino.Logger): ActivityDeps;
  stop(): Promise<void>;
}

export async function startWorld(opts: WorldOptions): Promise<World> {
  const owner = opts.owner ?? 'acme';
  const repo = opts.repo ?? `fleet-${Math.random().toString(36).slice(2, 8)}`;
  const branch = opts.branch ?? 'main';
  const token = `ghs_standin_${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
  let app: World['app'];
  let publicKey: string | undefined;
  if (opts.githubApp) {
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
    app = { appId: 4_200_000 + Math.floor(Math.random() * 1000), installationId: 51_000_000 + Math.floor(Math.random() * 1000), privateKey: pair.privateKey };
    publicKey = pair.publicKey;
  }
  const github = await startGitHubStandin({
    ...(opts.dataDir ? { dataDir: opts.dataDir } : {}),
    ...(app && publicKey ? { app: { id: app.appId, installationId: app.installationId, publicKey, ...(opts.githubApp?.tokenTtlSeconds ? { tokenTtlSeconds: opts.githubApp.tokenTtlSeconds } : {}) } } : {}),
  });
  let fleet: StandinFleet | undefined;
  try {
    const names = opts.hosts.map((h) => h.name);
    await github.createRepo(owner, repo, {
      defaultBranch: branch,
      files: { ...fleetFlakeFiles(names, { version: opts.initialVersion ?? 'v1' }), 'README.md': '# fleet\n' },
      message: 'fleet flake',
    });
    fleet = await startFleet(opts.hosts, opts.fleetStartTimeoutMs === undefined ? {} : { startTimeoutMs: opts.fleetStartTimeoutMs });
  } catch (err) {
    await github.stop();
    throw err;
  }
  const f = fleet;
  const flakeRefTemplate = `git+${github.baseUrl}/git/{owner}/{repo}.git?ref=${branch}&rev={sha}`;
  let prSeq = 0;
  return {
    github,
    fleet: f,
    owner,
    repo,
    branch,
    token,
    ...(app ? { app } : {}),
    flakeRefTemplate,
    async openLockUpdate(version, o = {}) {
      prSeq += 1;
      return github.openPullRequest(owner, repo, {
        title: o.title ?? `flake.lock: update to ${version}`,
        base: branch,
        headBranch: `update-flake-lock-${prSeq}-${version}`,
        files: { 'flake.lock': fleetFlakeLock({ version, ...(o.kernel ? { kernel: o.kernel } : {}) }) },
      });
    },
    fleetFile(onFailure = { revert: 'commit', rollbackHosts: true }, order, rollout) {
      const hosts = (order ?? f.hosts.map((h) => h.name)).map((name) => {
        const h = f.host(name);
        return { name: h.name, address: h.address, port: h.port, user: h.user, kind: h.kind, attr: h.name };
      });
      return {
        repository: { owner, name: repo, branch },
        flakeRef: flakeRefTemplate,
        onFailure,
        manualWindow: 3600,
        timeouts: { ...DEFAULT_FLEET_TIMEOUTS },
        defaults: {},
        hosts,
        ...(rollout ? { rollout } : {}),
      };
    },
    activityDeps(logger) {
      const log = logger ?? pino({ level: process.env.LOG_LEVEL ?? 'silent' });
      return {
        github: createGitHub({ baseUrl: github.baseUrl, ...(app ? { app } : { token }), log }),
        ...(app ? { githubIsApp: true } : {}),
        ssh: { privateKey: f.clientPrivateKey, knownHosts: f.knownHosts, readyTimeoutMs: 5_000, keepaliveIntervalMs: 1_000, keepaliveCountMax: 3 },
        logger: log,
        heartbeatMs: 1_000,
      };
    },
    async stop() {
      await Promise.allSettled([f.stop(), github.stop()]);
    },
  };
}
