import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NativeConnection, Runtime, makeTelemetryFilterString } from '@temporalio/worker';
import { openAuditStore } from '../src/audit/open-audit-store';
import { AuditEnv, auditTarget, githubAuth, MetricsEnv, readEnv, resolveTemporal, WorkerEnv } from '../src/config';
import { createGitHub } from '../src/github';
import { createLogger } from '../src/logger';
import { createWorkerMetrics, startMetricsServer } from '../src/metrics';
import { pinoSdkLogger } from '../src/temporal/sdk-logger';
import { createDeployWorker } from './worker';

/**
 * The workflow bundle `npm run build` writes beside the compiled worker (dist/workflow-bundle.js).
 * From the TypeScript sources there is none, and the worker bundles workflows/ at start.
 */
export const PREBUILT_BUNDLE = join(__dirname, '..', 'workflow-bundle.js');

/** The worker process: `npm run worker` (settings from the environment, see README). */
async function main(): Promise<void> {
  const env = readEnv(WorkerEnv.safeExtend(AuditEnv.shape).safeExtend(MetricsEnv.shape));
  const logger = createLogger('nixfleet-worker');
  // The SDK's lines, the native core's included (forwarded), go to the same pino logger.
  Runtime.install({
    logger: pinoSdkLogger(logger, 'INFO'),
    telemetryOptions: {
      logging: { filter: makeTelemetryFilterString({ core: 'WARN' }), forward: {} },
      // The SDK core's metrics (task slots, polls, latencies) on their own Prometheus address.
      ...(env.NIXFLEET_TEMPORAL_METRICS_ADDRESS ? { metrics: { prometheus: { bindAddress: env.NIXFLEET_TEMPORAL_METRICS_ADDRESS } } } : {}),
    },
  });
  const metrics = createWorkerMetrics();
  const metricsServer = env.NIXFLEET_METRICS_PORT !== undefined ? await startMetricsServer(metrics.registry, { host: env.NIXFLEET_METRICS_HOST, port: env.NIXFLEET_METRICS_PORT }) : undefined;
  const prebuilt = existsSync(PREBUILT_BUNDLE);
  // A token, or a GitHub App installation (tokens renewed before they expire).
  const gh = githubAuth(env);
  // The durable audit log: NIXFLEET_AUDIT_URL (postgres://… or sqlite:PATH), else the SQLite file
  // NIXFLEET_AUDIT_DB (default ~/.local/state/nixfleet/audit.db).
  const audit = await openAuditStore(auditTarget(env));
  const temporal = resolveTemporal(env, (message) => logger.warn(message));
  const connection = await NativeConnection.connect(temporal.connection);
  const { worker, close } = await createDeployWorker({
    connection,
    namespace: temporal.namespace,
    taskQueue: env.TEMPORAL_TASK_QUEUE,
    ...(prebuilt ? { workflowBundle: { codePath: PREBUILT_BUNDLE } } : {}),
    metrics,
    deps: {
      github: createGitHub({ baseUrl: env.GITHUB_API_URL, ...gh, log: logger }),
      githubIsApp: 'app' in gh,
      ssh: {
        privateKey: readFileSync(env.NIXFLEET_SSH_KEY),
        knownHosts: readFileSync(env.NIXFLEET_KNOWN_HOSTS, 'utf8'),
        ...(env.NIXFLEET_SSH_MAX_CONNECTIONS !== undefined ? { maxConnections: env.NIXFLEET_SSH_MAX_CONNECTIONS } : {}),
        ...(env.NIXFLEET_SSH_IDLE_SECONDS !== undefined ? { idleMs: env.NIXFLEET_SSH_IDLE_SECONDS * 1000 } : {}),
      },
      logger,
      audit,
    },
  });
  // One line says everything a reader of the log needs at start, and it comes last: whoever waits
  // for "worker started" has the audit location and the metrics listeners with it.
  logger.info(
    {
      address: temporal.connection.address,
      namespace: temporal.namespace,
      taskQueue: env.TEMPORAL_TASK_QUEUE,
      workflowBundle: prebuilt ? PREBUILT_BUNDLE : 'bundled at start',
      audit: audit.location,
      ...(metricsServer ? { metrics: metricsServer.url } : {}),
      ...(env.NIXFLEET_TEMPORAL_METRICS_ADDRESS ? { temporalMetrics: env.NIXFLEET_TEMPORAL_METRICS_ADDRESS } : {}),
      startupMs: Math.round(performance.now()),
    },
    'worker started',
  );
  try {
    await worker.run();
  } finally {
    await close();
    await metricsServer?.close();
    await connection.close();
    await audit.close();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
