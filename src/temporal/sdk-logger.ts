import { DefaultLogger, type LogEntry, type LogLevel } from '@temporalio/worker';
import type { Logger } from '../logger';

const PINO: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' };

/**
 * The Temporal SDK's logger (Runtime.install({ logger })) writing to the process's pino logger: the
 * SDK's own lines (worker state, workflow and activity logs, the native core's forwarded lines) come
 * out as JSON beside the product's, with `sdk: true` and the SDK's metadata.
 */
export function pinoSdkLogger(logger: Logger, level: LogLevel = 'INFO'): DefaultLogger {
  const child = logger.child({ sdk: true });
  return new DefaultLogger(level, (e: LogEntry) => {
    const { meta } = e;
    child[PINO[e.level]](meta && Object.keys(meta).length > 0 ? { temporal: meta } : {}, e.message);
  });
}
