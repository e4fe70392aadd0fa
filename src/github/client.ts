import { createAppAuth } from '@octokit/auth-app';
import { Octokit } from '@octokit/rest';

/** The subset of a pino logger the adapter uses. */
export interface AdapterLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** A GitHub App installation: the deployer acts as the app (`<slug>[bot]`), with short-lived tokens. */
export interface GitHubAppAuth {
  appId: number;
  /** The app's private key (PEM, PKCS#1 or PKCS#8). Never logged. */
  privateKey: string;
  installationId: number;
}

export interface CreateGitHubOptions {
  /** https://api.github.com, or a GitHub Enterprise Server's https://HOST/api/v3 (or the stand-in). */
  baseUrl?: string;
  /** A fine-grained token or installation token (contents + pull requests read/write). Never logged. */
  token?: string;
  /** Authenticate as a GitHub App installation instead of with `token`. */
  app?: GitHubAppAuth;
  log?: AdapterLogger;
  userAgent?: string;
}

/**
 * Renew an installation token when less than this share of its lifetime is left (and at most five
 * minutes before it expires): GitHub's tokens last an hour, so normally five minutes early.
 */
const RENEW_SHARE = 0.25;
const RENEW_AT_MOST_MS = 5 * 60_000;

/**
 * Installation tokens from @octokit/auth-app, renewed before they expire. auth-app's own cache keeps
 * a token for 59 minutes whatever its `expires_at` says; this asks for a fresh one (refresh: true)
 * once the token it holds is close to its `expires_at`, and shares one renewal among concurrent
 * requests.
 */
export function installationTokenSource(opts: { app: GitHubAppAuth; baseUrl: string; userAgent: string; now?: () => number }): () => Promise<string> {
  const now = opts.now ?? Date.now;
  const auth = createAppAuth({
    appId: opts.app.appId,
    privateKey: opts.app.privateKey,
    installationId: opts.app.installationId,
    // An unauthenticated Octokit's request: the token exchange authenticates with the app's JWT.
    request: new Octokit({ baseUrl: opts.baseUrl, userAgent: opts.userAgent }).request,
  });
  let held: { token: string; renewAt: number } | undefined;
  let pending: Promise<string> | undefined;
  const renew = async (): Promise<string> => {
    const started = now();
    const a = await auth({ type: 'installation', refresh: true });
    const expires = Date.parse(a.expiresAt);
    const lifetime = Number.isNaN(expires) ? 0 : expires - started;
    held = { token: a.token, renewAt: expires - Math.min(RENEW_AT_MOST_MS, lifetime * RENEW_SHARE) };
    return a.token;
  };
  return async () => {
    if (held && now() < held.renewAt) return held.token;
    pending ??= renew().finally(() => {
      pending = undefined;
    });
    return pending;
  };
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
  if ((opts.token === undefined) === (opts.app === undefined)) throw new Error('createGitHub: give either a token or an app');
  const baseUrl = opts.baseUrl ?? 'https://api.github.com';
  const userAgent = opts.userAgent ?? 'nixfleet-deployer';
  const octokit = new Octokit({
    ...(opts.token !== undefined ? { auth: opts.token } : {}),
    baseUrl,
    userAgent,
    // Octokit reports failed requests at error level; the adapter classifies and logs them itself.
    log: { debug: forward('debug'), info: forward('debug'), warn: forward('warn'), error: forward('debug') },
  });
  if (opts.app) {
    const token = installationTokenSource({ app: opts.app, baseUrl, userAgent });
    octokit.hook.before('request', async (options) => {
      options.headers.authorization = `token ${await token()}`;
    });
  }
  return octokit;
}
