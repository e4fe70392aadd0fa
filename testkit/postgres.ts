/**
 * A real PostgreSQL server for tests: Debian's `postgresql` package (scripts/install-system-deps.sh
 * installs it), a cluster made by `initdb` in a temporary directory, `postgres` on a free loopback
 * port (no Unix socket), stopped and removed by `stop()`. PostgreSQL refuses to run as root: as root,
 * the server runs as the package's `postgres` user (or `nobody`), which then owns the directory.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { Client } from 'pg';
import { freePort, isExecutable } from './dev-server';

/**
 * The directory with `initdb` and `postgres`: $NIXFLEET_PG_BIN, Debian's /usr/lib/postgresql/<newest>/bin,
 * or PATH. Throws a message that says how to get them.
 */
export function locatePostgresBin(): string {
  const has = (dir: string) => isExecutable(join(dir, 'initdb')) && isExecutable(join(dir, 'postgres'));
  const fromEnv = process.env.NIXFLEET_PG_BIN;
  if (fromEnv) {
    if (!has(fromEnv)) throw new Error(`NIXFLEET_PG_BIN=${fromEnv} has no initdb and postgres`);
    return fromEnv;
  }
  let versions: string[] = [];
  try {
    versions = readdirSync('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  } catch {
    // not Debian's layout
  }
  for (const v of versions) if (has(join('/usr/lib/postgresql', v, 'bin'))) return join('/usr/lib/postgresql', v, 'bin');
  for (const dir of (process.env.PATH ?? '').split(delimiter)) if (dir && has(dir)) return dir;
  throw new Error('No PostgreSQL server found (looked at $NIXFLEET_PG_BIN, /usr/lib/postgresql/*/bin and PATH). Install it with: bash scripts/install-system-deps.sh');
}

/** Who runs the server: the caller, or (as root, which PostgreSQL refuses) the `postgres` user, else `nobody`. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  for (const name of ['postgres', 'nobody']) {
    try {
      const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
      const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
      if (uid > 0) return { uid, gid };
    } catch {
      // no such user
    }
  }
  throw new Error('running as root, and neither a `postgres` nor a `nobody` user exists to run PostgreSQL as');
}

export interface PostgresServer {
  /** `postgres://nixfleet@127.0.0.1:PORT/postgres` (trust authentication on loopback). */
  url: string;
  port: number;
  /** A new, empty database; its URL. */
  createDatabase(name: string): Promise<string>;
  /** Stops the server (fast shutdown; SIGKILL after a grace period) and removes its directory. */
  stop(): Promise<void>;
}

const USER = 'nixfleet';

async function waitReady(url: string, child: ChildProcess, log: () => string, deadlineMs: number): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`postgres exited (${child.exitCode ?? child.signalCode}) before it was ready: ${log()}`);
    const client = new Client({ connectionString: url, connectionTimeoutMillis: 1000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      return;
    } catch (err) {
      lastError = err;
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  throw new Error(`postgres at ${url} not ready after ${deadlineMs} ms: ${String(lastError)}; ${log()}`);
}

/** Starts a throw-away PostgreSQL server. On a port taken between its choice and the bind, tries again (3 times). */
export async function startPostgres(opts: { readyTimeoutMs?: number } = {}): Promise<PostgresServer> {
  const bin = locatePostgresBin();
  const user = serverUser();
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-pg-'));
  const data = join(dir, 'data');
  const as = user ? { uid: user.uid, gid: user.gid } : {};
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C', LC_ALL: 'C' };
  try {
    if (user) chownSync(dir, user.uid, user.gid);
    execFileSync(join(bin, 'initdb'), ['-D', data, '-U', USER, '--auth=trust', '--no-locale', '-E', 'UTF8', '--no-sync'], { cwd: dir, env, ...as, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`initdb failed: ${stderr || String(err)}`);
  }
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    // No Unix socket (unix_socket_directories ''), loopback only; durability is not what a test needs.
    const child = spawn(
      join(bin, 'postgres'),
      ['-D', data, '-p', String(port), '-h', '127.0.0.1', '-k', '', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=40', '-c', 'shared_buffers=16MB'],
      { cwd: dir, env, ...as, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const halt = async (): Promise<void> => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGINT'); // fast shutdown
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
    };
    const url = `postgres://${USER}@127.0.0.1:${port}/postgres`;
    try {
      await waitReady(url, child, () => stderr.trim(), opts.readyTimeoutMs ?? 60_000);
    } catch (err) {
      await halt();
      if (attempt < 3 && /could not bind|already in use/i.test(stderr)) continue;
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    return {
      url,
      port,
      async createDatabase(name: string): Promise<string> {
        if (!/^[a-z][a-z0-9_]{0,62}$/.test(name)) throw new Error(`createDatabase: ${name}: lower-case letters, digits and _`);
        const client = new Client({ connectionString: url });
        await client.connect();
        try {
          await client.query(`CREATE DATABASE ${name}`);
        } finally {
          await client.end();
        }
        return `postgres://${USER}@127.0.0.1:${port}/${name}`;
      },
      async stop(): Promise<void> {
        await halt();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
}
