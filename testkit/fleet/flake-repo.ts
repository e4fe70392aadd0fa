/**
 * A git repository holding the fleet flake, as hosts fetch it: a bare repository (what a git
 * server serves) fed from a work tree. Hosts build `git+file://<bare>?rev=<sha>` (or the same
 * repository served over git smart HTTP by the GitHub stand-in).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { fleetFlakeFiles, fleetFlakeLock } from './flake';
import type { FleetFlakeOptions } from './flake';

const execFileP = promisify(execFile);

export interface FleetFlakeRepo {
  /** The bare repository (serve this one). */
  readonly bareDir: string;
  readonly workDir: string;
  readonly branch: string;
  /** `git+file:///…/flake.git` */
  readonly url: string;
  /** The flake reference pinned at `rev`: `git+file:///…/flake.git?ref=main&rev=SHA`. */
  flakeRef(rev: string): string;
  head(): Promise<string>;
  /** Writes files (path → content) in the work tree, commits and pushes; returns the new commit. */
  commit(files: Record<string, string>, message: string): Promise<string>;
  /** Replaces flake.lock with a new version marker (what a flake.lock update PR does). */
  updateLock(opts: FleetFlakeOptions, message?: string): Promise<string>;
}

async function git(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await execFileP('git', ['-c', 'user.name=NixFleet Test', '-c', 'user.email=test@nixfleet.invalid', ...args], {
    cwd,
  });
  return stdout.trim();
}

export async function createFleetFlakeRepo(
  dir: string,
  hostNames: readonly string[],
  opts: FleetFlakeOptions & { branch?: string },
): Promise<FleetFlakeRepo> {
  const branch = opts.branch ?? 'main';
  const workDir = path.join(dir, 'flake-work');
  const bareDir = path.join(dir, 'flake.git');
  await fsp.mkdir(workDir, { recursive: true });
  await git(workDir, 'init', '-q', '-b', branch);
  await git(dir, 'init', '-q', '--bare', '-b', branch, bareDir);
  await git(workDir, 'remote', 'add', 'origin', bareDir);
  const url = `git+file://${bareDir}`;
  const repo: FleetFlakeRepo = {
    bareDir,
    workDir,
    branch,
    url,
    flakeRef: (rev: string) => {
      if (!/^[0-9a-f]{40}$/.test(rev)) throw new Error(`flakeRef: invalid rev ${rev}`);
      return `${url}?ref=${branch}&rev=${rev}`;
    },
    head: () => git(workDir, 'rev-parse', 'HEAD'),
    async commit(files, message) {
      for (const [rel, content] of Object.entries(files)) {
        const file = path.join(workDir, rel);
        if (!file.startsWith(workDir + path.sep)) throw new Error(`commit: path outside the repo: ${rel}`);
        await fsp.mkdir(path.dirname(file), { recursive: true });
        await fsp.writeFile(file, content);
        await git(workDir, 'add', '--', rel);
      }
      await git(workDir, 'commit', '-q', '--allow-empty', '-m', message);
      await git(workDir, 'push', '-q', 'origin', `HEAD:refs/heads/${branch}`);
      return git(workDir, 'rev-parse', 'HEAD');
    },
    updateLock(lockOpts, message) {
      return repo.commit({ 'flake.lock': fleetFlakeLock(lockOpts) }, message ?? `flake.lock: update to ${lockOpts.version}`);
    },
  };
  const files = fleetFlakeFiles(hostNames, opts);
  await repo.commit({ ...files }, `fleet flake ${opts.version}`);
  return repo;
}
