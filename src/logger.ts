import pino from 'pino';
import type { Logger } from 'pino';

export type { Logger };

/**
 * The one place the service builds its pino logger. Secrets never reach it: the paths below are
 * redacted wherever they appear in a logged object.
 */
export function createLogger(name: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({
    name,
    level,
    redact: {
      paths: ['token', '*.token', 'privateKey', '*.privateKey', 'auth', '*.auth', 'authorization', '*.authorization', 'headers.authorization'],
      censor: '[redacted]',
    },
  });
}
