import { Octokit } from '@octokit/rest';

/** The subset of a pino logger the adapter uses. */
export interface AdapterLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface CreateGitHubOptions {
  /** https://api.github.com, or a GitHub Enterprise Server's https://HOST/api/v3 (or the stand-in). */
  baseUrl?: string;
  /** A fine-grained token or installation token (contents + pull requests read/write). Never logged. */
  token: string;
  log?: AdapterLogger;
  userAgent?: string;
}

/**
 * An Octokit for the adapter. Deliberately WITHOUT @octokit/plugin-retry and plugin-throttling:
 * Temporal retries activities, and classifyGitHubError maps rate limits to a next-retry delay.
 */
export function createGitHub(opts: CreateGitHubOptions): Octokit {
  const log = opts.log;
  const forward =
    (level: keyof AdapterLogger) =>
    (message: string, ...rest: unknown[]): void => {
      log?.[level]({ component: 'octokit', ...(rest.length > 0 ? { details: rest.map(String) } : {}) }, message);
    };
  return new Octokit({
    auth: opts.token,
    baseUrl: opts.baseUrl ?? 'https://api.github.com',
    userAgent: opts.userAgent ?? 'nixfleet-deployer',
    // Octokit reports failed requests at error level; the adapter classifies and logs them itself.
    log: { debug: forward('debug'), info: forward('debug'), warn: forward('warn'), error: forward('debug') },
  });
}
