import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { slimWorkflowBundle } from '../../workers/bundle';
import { startDevServer, type DevServer } from '../../testkit/dev-server';

export interface TestTemporal {
  server: DevServer;
  dbFile: string;
  client: Client;
  connection: Connection;
  nativeConnection: NativeConnection;
  /** Restart the server on the same port and SQLite file (history survives). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A real Temporal dev server (the official CLI, SQLite persistence) for one test file. It fails, never
 * skips, when the binary is missing: run scripts/setup.sh.
 */
export async function startTestTemporal(): Promise<TestTemporal> {
  quietRuntime();
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-temporal-'));
  const dbFile = join(dir, 'temporal.db');
  let server = await startDevServer({ dbFile, uiPort: false, logFile: join(dir, 'server.log') });
  const connection = await Connection.connect({ address: server.address });
  const nativeConnection = await NativeConnection.connect({ address: server.address });
  const client = new Client({ connection, namespace: server.namespace });
  const port = Number(server.address.split(':')[1]);
  return {
    get server() {
      return server;
    },
    dbFile,
    client,
    connection,
    nativeConnection,
    async restart() {
      await server.stop('SIGKILL');
      server = await startDevServer({ dbFile, port, uiPort: false, logFile: join(dir, 'server.log') });
    },
    async stop() {
      await nativeConnection.close().catch(() => undefined);
      await connection.close().catch(() => undefined);
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;
/** The workflow bundle, built once per test file. */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  // Slimmed as the worker loads it (workers/bundle.ts).
  bundle ??= bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows'), logger: quietLogger }).then((b) => ({ ...b, code: slimWorkflowBundle(b.code) }));
  return bundle;
}

const noop = (): void => undefined;
const quietLogger = { trace: noop, debug: noop, info: noop, warn: noop, error: console.error, log: noop };

/** A task queue name unique to the calling test. */
export function taskQueueFor(title: string): string {
  return `test-${title.replace(/[^A-Za-z0-9]+/g, '-').slice(0, 60)}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Poll `probe` until it returns a value other than undefined, or fail with `what` after the deadline. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Worker logs at WARN and above only (the Runtime is per process: install once). */
function quietRuntime(): void {
  try {
    Runtime.install({ logger: new DefaultLogger((process.env.TEMPORAL_LOG_LEVEL as 'WARN' | undefined) ?? 'WARN') });
  } catch {
    // already installed in this process
  }
}
