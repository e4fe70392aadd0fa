/**
 * The stand-in world with the simulated fleet in place of the sshd stand-in: the same git-backed
 * GitHub stand-in holding the fleet flake, the same helpers (openLockUpdate, fleetFile, activityDeps)
 * as testkit/world.ts, for runs at a scale the real stand-in cannot reach.
 */
import { DEFAULT_FLEET_TIMEOUTS } from '../../src/schemas/fleet.schema';
import pino from 'pino';
import type { ActivityDeps } from '../../activities';
import type { FleetFile } from '../../src/schemas/fleet.schema';
import { createGitHub } from '../../src/github';
import { fleetFlakeFiles, fleetFlakeLock } from '../fleet/flake';
import { startGitHubStandin, type GitHubStandin } from '../github';
import { startSimFleet, type SimFleet, type StartSimFleetOptions } from './fleet';
import type { SimHostSpec } from './host';

export interface SimWorldOptions extends StartSimFleetOptions {
  hosts: SimHostSpec[];
  owner?: string;
  repo?: string;
  branch?: string;
  initialVersion?: string;
}

export interface SimWorld {
  github: GitHubStandin;
  fleet: SimFleet;
  owner: string;
  repo: string;
  branch: string;
  token: string;
  flakeRefTemplate: string;
  openLockUpdate(version: string): Promise<{ number: number; headSha: string }>;
  fleetFile(onFailure?: FleetFile['onFailure'], order?: string[], rollout?: FleetFile['rollout']): FleetFile;
  activityDeps(logger?: pino.Logger): ActivityDeps;
  stop(): Promise<void>;
}

export async function startSimWorld(opts: SimWorldOptions): Promise<SimWorld> {
  const owner = opts.owner ?? 'acme';
  const repo = opts.repo ?? `fleet-${Math.random().toString(36).slice(2, 8)}`;
  const branch = opts.branch ?? 'main';
  const token = `ghs_standin_${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
  const github = await startGitHubStandin({});
  let fleet: SimFleet;
  try {
    // The flake's files are written as for the real fleet (small: the simulated hosts never read them).
    const names = opts.hosts.length <= 200 ? opts.hosts.map((h) => h.name) : [];
    await github.createRepo(owner, repo, { defaultBranch: branch, files: { ...fleetFlakeFiles(names, { version: opts.initialVersion ?? 'v1' }), 'README.md': '# fleet\n' }, message: 'fleet flake' });
    fleet = await startSimFleet(opts.hosts, opts);
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
    flakeRefTemplate,
    async openLockUpdate(version) {
      prSeq += 1;
      return github.openPullRequest(owner, repo, { title: `flake.lock: update to ${version}`, base: branch, headBranch: `update-flake-lock-${prSeq}-${version}`, files: { 'flake.lock': fleetFlakeLock({ version }) } });
    },
    fleetFile(onFailure = { revert: 'commit', rollbackHosts: true }, order, rollout) {
      const hosts = (order ?? f.hosts.map((h) => h.name)).map((name) => {
        const h = f.host(name);
        return { name: h.name, address: h.address, port: h.port, user: h.user, kind: h.kind, attr: h.name };
      });
      return { repository: { owner, name: repo, branch }, flakeRef: flakeRefTemplate, onFailure, manualWindow: 3600, timeouts: { ...DEFAULT_FLEET_TIMEOUTS }, defaults: {}, hosts, ...(rollout ? { rollout } : {}) };
    },
    activityDeps(logger) {
      const log = logger ?? pino({ level: process.env.LOG_LEVEL ?? 'silent' });
      return {
        github: createGitHub({ baseUrl: github.baseUrl, token, log }),
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
