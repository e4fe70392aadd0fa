import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, createWriteStream, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { Connection } from '@temporalio/client';

export const TEMPORAL_CLI_VERSION = 'v1.5.1';

/** Search attributes the deployer writes; registered on the dev server at start. */
export const SEARCH_ATTRIBUTES = {
  NixfleetRepository: 'Keyword',
  NixfleetPhase: 'Keyword',
} as const;

export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function temporalCacheDir(): string {
  const root = process.env.NIXFLEET_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'nixfleet');
  return join(root, `temporal-${TEMPORAL_CLI_VERSION}`);
}

/**
 * Where the Temporal CLI is: $TEMPORAL_BIN, the build cache that scripts/build-temporal.sh fills, or PATH.
 * Throws a message that says how to get one rather than returning nothing.
 */
export function locateTemporalBinary(): string {
  const fromEnv = process.env.TEMPORAL_BIN;
  if (fromEnv) {
    if (!isExecutable(fromEnv)) throw new Error(`TEMPORAL_BIN=${fromEnv} is not an executable file`);
    return fromEnv;
  }
  const cached = join(temporalCacheDir(), 'temporal');
  if (isExecutable(cached)) return cached;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && isExecutable(join(dir, 'temporal'))) return join(dir, 'temporal');
  }
  throw new Error(
    `No Temporal CLI found (looked at $TEMPORAL_BIN, ${cached} and PATH). Build it with: bash scripts/build-temporal.sh`,
  );
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * The embedded server's tuning (the demo and the tests start the server with it; issue 14, BENCHMARKS.md's
 * experiments show what each setting changes):
 * - SQLite in WAL mode with synchronous=NORMAL: a commit is one append to the WAL, no fsync per
 *   transaction. Committed transactions survive the server's process being killed whatever the
 *   synchronous setting (SQLite's documentation of PRAGMA synchronous); WAL + NORMAL stays consistent
 *   on power loss or an OS crash but may lose the last commits there. tests/faults/crash-matrix.test.ts
 *   kills the server with SIGKILL mid-deployment and checks every invariant after its restart.
 * - One task-queue partition (matching.numTaskqueueRead/WritePartitions=1; the server's default is 4):
 *   with 4, a task and the worker's long poll can land on different partitions, and the task waits to
 *   be forwarded to the root partition; one partition is what a single low-throughput queue needs.
 * - Eager activity execution (system.enableActivityEagerExecution; off by default before server 1.32,
 *   temporalio/temporal#10628): the worker that completes a workflow task may take the activity it just
 *   scheduled in the reply, without a round trip through matching.
 */
export const EMBEDDED_SERVER_TUNING: Required<Pick<DevServerOptions, 'sqlitePragmas' | 'dynamicConfig'>> = {
  sqlitePragmas: { journal_mode: 'wal', synchronous: 'NORMAL' },
  dynamicConfig: {
    'matching.numTaskqueueReadPartitions': 1,
    'matching.numTaskqueueWritePartitions': 1,
    'system.enableActivityEagerExecution': true,
  },
};

export interface DevServerOptions {
  /**
   * Run the server in its own process group, so a terminal's Ctrl-C (sent to the foreground group)
   * does not stop it under a worker that is still shutting down: the caller stops it, last.
   */
  ownProcessGroup?: boolean;
  /** SQLite file: history survives a restart of the server. Omit for in-memory. */
  dbFile?: string;
  ip?: string;
  port?: number;
  /** Web UI port; `false` runs headless. */
  uiPort?: number | false;
  namespace?: string;
  binary?: string;
  /** Where the server's own output goes (appended). Default: discarded. */
  logFile?: string;
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  readyTimeoutMs?: number;
  /** SQLite pragmas (`--sqlite-pragma NAME=VALUE`, file db only); omitted: EMBEDDED_SERVER_TUNING's; `{}`: the server's own. */
  sqlitePragmas?: Record<string, string>;
  /** Dynamic config (`--dynamic-config-value KEY=JSON`); omitted: EMBEDDED_SERVER_TUNING's; `{}`: the server's own. */
  dynamicConfig?: Record<string, unknown>;
}

export interface DevServer {
  address: string;
  namespace: string;
  uiUrl: string | undefined;
  pid: number;
  /** Kill the server (SIGTERM, SIGKILL after a grace period); resolves when the process has exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  exited: Promise<number | null>;
}

async function waitReady(address: string, namespace: string, child: ChildProcess, deadlineMs: number): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`temporal server exited with code ${child.exitCode} before it was ready`);
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1000 });
      try {
        await connection.workflowService.describeNamespace({ namespace });
        return;
      } finally {
        await connection.close();
      }
    } catch (err) {
      lastError = err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`temporal server at ${address} not ready after ${deadlineMs} ms: ${String(lastError)}`);
}

/**
 * Starts `temporal server start-dev` and resolves once the namespace answers. When the ports were
 * chosen here (not given) and the server exits before it is ready, it is started again on fresh
 * ports, up to three times: besides --port and --ui-port the dev server binds ports of its own
 * (e.g. its HTTP API), and another process can take a free port between the choice and the bind.
 */
export async function startDevServer(opts: DevServerOptions = {}): Promise<DevServer> {
  const ownPorts = opts.port === undefined && (opts.uiPort === undefined || opts.uiPort === false);
  for (let attempt = 1; ; attempt++) {
    try {
      return await startDevServerOnce(opts);
    } catch (err) {
      const exitedEarly = err instanceof Error && /exited with code .* before it was ready/.test(err.message);
      if (!ownPorts || !exitedEarly || attempt >= 3) throw err;
    }
  }
}

async function startDevServerOnce(opts: DevServerOptions): Promise<DevServer> {
  const binary = opts.binary ?? locateTemporalBinary();
  const ip = opts.ip ?? '127.0.0.1';
  const port = opts.port ?? (await freePort(ip));
  const namespace = opts.namespace ?? 'default';
  const args = ['server', 'start-dev', '--ip', ip, '--port', String(port), '--namespace', namespace];
  args.push('--log-level', opts.logLevel ?? 'warn');
  if (opts.dbFile) {
    mkdirSync(dirname(opts.dbFile), { recursive: true });
    args.push('--db-filename', opts.dbFile);
    for (const [k, v] of Object.entries(opts.sqlitePragmas ?? EMBEDDED_SERVER_TUNING.sqlitePragmas)) args.push('--sqlite-pragma', `${k}=${v}`);
  }
  for (const [k, v] of Object.entries(opts.dynamicConfig ?? EMBEDDED_SERVER_TUNING.dynamicConfig)) args.push('--dynamic-config-value', `${k}=${JSON.stringify(v)}`);
  let uiUrl: string | undefined;
  if (opts.uiPort === false) {
    args.push('--headless');
  } else {
    const uiPort = opts.uiPort ?? (await freePort(ip));
    args.push('--ui-port', String(uiPort));
    uiUrl = `http://${ip}:${uiPort}`;
  }
  // Registering an attribute that the SQLite file already has is fine on restart.
  for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) args.push('--search-attribute', `${name}=${type}`);

  const out = opts.logFile ? createWriteStream(opts.logFile, { flags: 'a' }) : undefined;
  const child = spawn(binary, args, { stdio: ['ignore', out ? 'pipe' : 'ignore', out ? 'pipe' : 'ignore'], detached: opts.ownProcessGroup === true });
  if (out) {
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
  }
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const address = `${ip}:${port}`;
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await waitReady(address, namespace, child, opts.readyTimeoutMs ?? 30_000);
  } catch (err) {
    await stop('SIGKILL');
    throw err;
  }
  return { address, namespace, uiUrl, pid: child.pid ?? -1, stop, exited };
}
