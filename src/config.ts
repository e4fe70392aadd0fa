import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { loadClientConfigProfile, toClientOptions } from '@temporalio/envconfig';
import { z } from 'zod';
import { TASK_QUEUE } from './domain/deployment';
import { formatZodError } from './schemas/fleet.schema';

/**
 * Where the worker and the API find Temporal: Temporal's own client configuration (the `temporal` CLI
 * and the SDKs share it; @temporalio/envconfig): a profile in a TOML file (TEMPORAL_CONFIG_FILE, else
 * ~/.config/temporalio/temporal.toml; TEMPORAL_PROFILE, else "default") with the environment
 * variables on top. Without either, the embedded dev server at 127.0.0.1:7233, namespace "default".
 */
export const TemporalEnv = z.object({
  TEMPORAL_ADDRESS: z.string().min(1).optional(),
  TEMPORAL_NAMESPACE: z.string().min(1).optional(),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default(TASK_QUEUE),
  TEMPORAL_CONFIG_FILE: z.string().min(1).optional(),
  TEMPORAL_PROFILE: z.string().min(1).optional(),
  TEMPORAL_API_KEY: z.string().optional(),
  TEMPORAL_TLS: z.enum(['0', '1', 'true', 'false']).optional(),
  TEMPORAL_TLS_CLIENT_CERT_PATH: z.string().optional(),
  TEMPORAL_TLS_CLIENT_KEY_PATH: z.string().optional(),
  TEMPORAL_TLS_SERVER_CA_CERT_PATH: z.string().optional(),
  TEMPORAL_TLS_SERVER_NAME: z.string().optional(),
  /** Deprecated (this project's names before envconfig): TEMPORAL_TLS_CLIENT_CERT_PATH and friends. */
  TEMPORAL_TLS_CERT: z.string().optional(),
  TEMPORAL_TLS_KEY: z.string().optional(),
  TEMPORAL_TLS_CA: z.string().optional(),
  /** Where envconfig looks for the default file. */
  HOME: z.string().optional(),
  XDG_CONFIG_HOME: z.string().optional(),
});
export type TemporalEnv = z.infer<typeof TemporalEnv>;

/** The old names, kept for one release, and Temporal's names for them. */
export const DEPRECATED_TEMPORAL_ENV = {
  TEMPORAL_TLS_CERT: 'TEMPORAL_TLS_CLIENT_CERT_PATH',
  TEMPORAL_TLS_KEY: 'TEMPORAL_TLS_CLIENT_KEY_PATH',
  TEMPORAL_TLS_CA: 'TEMPORAL_TLS_SERVER_CA_CERT_PATH',
} as const;

/** What the worker needs to reach hosts and GitHub. */
const positiveId = (what: string) => z.string().regex(/^[1-9][0-9]{0,15}$/, `${what}: a positive integer`);

export const WorkerEnv = TemporalEnv.extend({
  GITHUB_API_URL: z.string().url().default('https://api.github.com'),
  /** A token; or a GitHub App (the three GITHUB_APP_* settings). Exactly one of the two. */
  GITHUB_TOKEN: z.string().min(1, 'a GitHub token with contents and pull requests read/write').optional(),
  GITHUB_APP_ID: positiveId('the GitHub App id').optional(),
  /** The app's private key (a PEM file). */
  GITHUB_APP_PRIVATE_KEY_FILE: z.string().min(1).optional(),
  GITHUB_APP_INSTALLATION_ID: positiveId("the app's installation id (on the fleet repository's owner)").optional(),
  /** The deployer's SSH private key (file). */
  NIXFLEET_SSH_KEY: z.string().min(1),
  /** known_hosts pinning every host's key; an unknown or changed key refuses to connect. */
  NIXFLEET_KNOWN_HOSTS: z.string().min(1),
  /** SSH connections the worker keeps open at most (default: its concurrent activities plus 4). */
  NIXFLEET_SSH_MAX_CONNECTIONS: z.coerce.number().int().min(1).max(100_000).optional(),
  /** Seconds an unused SSH connection stays open (default 10). */
  NIXFLEET_SSH_IDLE_SECONDS: z.coerce.number().min(0).max(3600).optional(),
}).superRefine((env, ctx) => {
  const app = (['GITHUB_APP_ID', 'GITHUB_APP_PRIVATE_KEY_FILE', 'GITHUB_APP_INSTALLATION_ID'] as const).filter((k) => env[k] !== undefined);
  if (app.length > 0 && app.length < 3) {
    for (const k of ['GITHUB_APP_ID', 'GITHUB_APP_PRIVATE_KEY_FILE', 'GITHUB_APP_INSTALLATION_ID'] as const) {
      if (env[k] === undefined) ctx.addIssue({ code: 'custom', path: [k], message: 'GITHUB_APP_ID, GITHUB_APP_PRIVATE_KEY_FILE and GITHUB_APP_INSTALLATION_ID go together' });
    }
  } else if (app.length === 3 && env.GITHUB_TOKEN !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['GITHUB_TOKEN'], message: 'set either GITHUB_TOKEN or the GitHub App (GITHUB_APP_*), not both' });
  } else if (app.length === 0 && env.GITHUB_TOKEN === undefined) {
    ctx.addIssue({ code: 'custom', path: ['GITHUB_TOKEN'], message: 'a GitHub token with contents and pull requests read/write (or a GitHub App: GITHUB_APP_ID, GITHUB_APP_PRIVATE_KEY_FILE, GITHUB_APP_INSTALLATION_ID)' });
  }
});
export type WorkerEnv = z.infer<typeof WorkerEnv>;

/**
 * Metrics (Prometheus). Off unless a port is given; on 127.0.0.1 unless a host is. The Temporal SDK
 * core's own metrics get an address of their own (host:port), also off by default.
 */
export const MetricsEnv = z.object({
  NIXFLEET_METRICS_PORT: z.coerce.number().int().min(1).max(65535).optional(),
  NIXFLEET_METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  NIXFLEET_TEMPORAL_METRICS_ADDRESS: z
    .string()
    .regex(/^(\[[0-9a-fA-F:.]+\]|[0-9.]+):[0-9]{1,5}$/, 'host:port with an IP address, e.g. 127.0.0.1:9465')
    .optional(),
});
export type MetricsEnv = z.infer<typeof MetricsEnv>;

/**
 * Where the audit log is, for the worker (which writes it) and the API (which reads it): a connection
 * URL in NIXFLEET_AUDIT_URL, `postgres://user:password@host:5432/db` (or `postgresql://`; every libpq
 * URL parameter the `pg` driver knows, e.g. `?sslmode=require`) or `sqlite:PATH` (`sqlite:///abs/path`
 * too). Without it, the embedded SQLite file: NIXFLEET_AUDIT_DB, else
 * `$XDG_STATE_HOME/nixfleet/audit.db`, else `~/.local/state/nixfleet/audit.db`.
 */
export const AuditEnv = z.object({
  NIXFLEET_AUDIT_URL: z
    .string()
    .regex(/^(postgres|postgresql):\/\/.+|^sqlite:.+/, 'a connection URL: postgres://user:password@host:5432/database or sqlite:PATH')
    .refine((s) => !s.includes('\0'), 'no NUL characters')
    .optional(),
  NIXFLEET_AUDIT_DB: z
    .string()
    .min(1, 'a file path for the audit database')
    .refine((s) => !s.includes('\0'), 'no NUL characters')
    .optional(),
  XDG_STATE_HOME: z.string().optional(),
});
export type AuditEnv = z.infer<typeof AuditEnv>;

/** Which audit store, and where: one of the backends in src/audit/open-audit-store.ts. */
export type AuditTarget = { backend: 'sqlite'; file: string } | { backend: 'postgres'; url: string };

/** The embedded file when no URL is given: NIXFLEET_AUDIT_DB, else under $XDG_STATE_HOME (absolute), else ~/.local/state. */
export function auditDbPath(env: AuditEnv): string {
  if (env.NIXFLEET_AUDIT_DB) return env.NIXFLEET_AUDIT_DB;
  const state = env.XDG_STATE_HOME && env.XDG_STATE_HOME.startsWith('/') ? env.XDG_STATE_HOME : join(homedir(), '.local', 'state');
  return join(state, 'nixfleet', 'audit.db');
}

export function auditTarget(env: AuditEnv): AuditTarget {
  const url = env.NIXFLEET_AUDIT_URL;
  if (url === undefined) return { backend: 'sqlite', file: auditDbPath(env) };
  if (env.NIXFLEET_AUDIT_DB !== undefined) throw new Error('configuration error: set NIXFLEET_AUDIT_URL or NIXFLEET_AUDIT_DB, not both');
  if (/^postgres(ql)?:\/\//.test(url)) return { backend: 'postgres', url };
  // sqlite:PATH, sqlite:///abs/path, sqlite::memory:
  let file = url.slice('sqlite:'.length);
  if (file.startsWith('//')) {
    file = file.slice(2);
    if (!isAbsolute(file)) throw new Error('configuration error: NIXFLEET_AUDIT_URL: sqlite:// takes an absolute path (sqlite:///var/lib/nixfleet/audit.db), or write sqlite:PATH');
  }
  return { backend: 'sqlite', file };
}

/** How the worker authenticates to GitHub, from WorkerEnv (reads the app's key file). */
export function githubAuth(env: Pick<WorkerEnv, 'GITHUB_TOKEN' | 'GITHUB_APP_ID' | 'GITHUB_APP_PRIVATE_KEY_FILE' | 'GITHUB_APP_INSTALLATION_ID'>): { token: string } | { app: { appId: number; privateKey: string; installationId: number } } {
  if (env.GITHUB_APP_ID !== undefined && env.GITHUB_APP_PRIVATE_KEY_FILE !== undefined && env.GITHUB_APP_INSTALLATION_ID !== undefined) {
    let privateKey: string;
    try {
      privateKey = readFileSync(env.GITHUB_APP_PRIVATE_KEY_FILE, 'utf8');
    } catch (err) {
      throw new Error(`configuration error: GITHUB_APP_PRIVATE_KEY_FILE: ${(err as { message?: unknown }).message ?? String(err)}`);
    }
    if (!/-----BEGIN (RSA )?PRIVATE KEY-----/.test(privateKey)) throw new Error('configuration error: GITHUB_APP_PRIVATE_KEY_FILE: not a PEM private key (download it from the app settings)');
    return { app: { appId: Number(env.GITHUB_APP_ID), privateKey, installationId: Number(env.GITHUB_APP_INSTALLATION_ID) } };
  }
  if (env.GITHUB_TOKEN === undefined) throw new Error('configuration error: GITHUB_TOKEN or GITHUB_APP_* required');
  return { token: env.GITHUB_TOKEN };
}

/**
 * systemd credentials (LoadCredential=NAME:PATH, found under $CREDENTIALS_DIRECTORY) for the settings
 * that hold secrets. A variable set in the environment wins; a credential fills it when it is unset.
 * `value`: the file's content is the setting (trailing newline dropped); `path`: the setting is a file
 * name, and the credential's path is used.
 */
export const CREDENTIALS: Record<string, { credential: string; as: 'value' | 'path' }> = {
  GITHUB_TOKEN: { credential: 'github-token', as: 'value' },
  GITHUB_APP_PRIVATE_KEY_FILE: { credential: 'github-app-key', as: 'path' },
  NIXFLEET_SSH_KEY: { credential: 'ssh-key', as: 'path' },
  NIXFLEET_KNOWN_HOSTS: { credential: 'known-hosts', as: 'path' },
  NIXFLEET_API_TOKENS_FILE: { credential: 'api-tokens', as: 'path' },
  TEMPORAL_API_KEY: { credential: 'temporal-api-key', as: 'value' },
  TEMPORAL_TLS_CLIENT_CERT_PATH: { credential: 'temporal-tls-cert', as: 'path' },
  TEMPORAL_TLS_CLIENT_KEY_PATH: { credential: 'temporal-tls-key', as: 'path' },
  TEMPORAL_TLS_SERVER_CA_CERT_PATH: { credential: 'temporal-tls-ca', as: 'path' },
};

/** The environment with unset secret settings filled from $CREDENTIALS_DIRECTORY (see CREDENTIALS). */
export function withCredentials(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const dir = env.CREDENTIALS_DIRECTORY;
  if (!dir) return env;
  const out: NodeJS.ProcessEnv = { ...env };
  for (const [name, { credential, as }] of Object.entries(CREDENTIALS)) {
    if (out[name] !== undefined && out[name] !== '') continue;
    const file = join(dir, credential);
    if (!existsSync(file)) continue;
    out[name] = as === 'path' ? file : readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  }
  return out;
}

export function readEnv<T>(schema: z.ZodType<T>, env: NodeJS.ProcessEnv = process.env): T {
  const r = schema.safeParse(withCredentials(env));
  if (!r.success) throw new Error(`configuration error:\n${formatZodError(r.error)}`);
  return r.data;
}

export interface TemporalConnectionOptions {
  address: string;
  tls?: { serverNameOverride?: string; serverRootCACertificate?: Buffer; clientCertPair?: { crt: Buffer; key: Buffer } } | boolean;
  apiKey?: string;
}

export interface TemporalTarget {
  /** Connection options shared by Connection (client) and NativeConnection (worker). */
  connection: TemporalConnectionOptions;
  namespace: string;
}

/**
 * The profile and the environment resolved by @temporalio/envconfig. The deprecated TEMPORAL_TLS_CERT,
 * TEMPORAL_TLS_KEY and TEMPORAL_TLS_CA still work (when the new name is unset), with a warning each.
 */
export function resolveTemporal(env: TemporalEnv, warn: (message: string) => void = (m) => process.emitWarning(m, 'DeprecationWarning')): TemporalTarget {
  const vars: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (typeof v === 'string' && k !== 'TEMPORAL_TASK_QUEUE') vars[k] = v;
  for (const [old, now] of Object.entries(DEPRECATED_TEMPORAL_ENV)) {
    const value = vars[old];
    if (value === undefined) continue;
    delete vars[old];
    if (vars[now] !== undefined) {
      warn(`${old} is deprecated and ignored because ${now} is set`);
      continue;
    }
    warn(`${old} is deprecated: use ${now} (Temporal's own name, shared with the temporal CLI) or a profile in temporal.toml`);
    vars[now] = value;
  }
  if ((vars.TEMPORAL_TLS_CLIENT_CERT_PATH === undefined) !== (vars.TEMPORAL_TLS_CLIENT_KEY_PATH === undefined)) {
    throw new Error('configuration error: TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH go together');
  }
  let profile: ReturnType<typeof loadClientConfigProfile>;
  try {
    profile = loadClientConfigProfile({ overrideEnvVars: vars });
  } catch (err) {
    throw new Error(`configuration error: Temporal client configuration${vars.TEMPORAL_CONFIG_FILE ? ` (${vars.TEMPORAL_CONFIG_FILE})` : ''}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const { connectionOptions } = toClientOptions(profile);
  // The old names switched TLS on with a CA alone or an API key; envconfig does so from the profile.
  let tls = connectionOptions.tls as TemporalConnectionOptions['tls'] | undefined;
  if (tls === undefined && (profile.apiKey || vars.TEMPORAL_TLS_SERVER_CA_CERT_PATH)) tls = true;
  return {
    connection: {
      address: profile.address ?? '127.0.0.1:7233',
      ...(tls !== undefined ? { tls } : {}),
      ...(profile.apiKey ? { apiKey: profile.apiKey } : {}),
    },
    namespace: profile.namespace ?? 'default',
  };
}

/** Connection options shared by Connection (client) and NativeConnection (worker). */
export function temporalConnectionOptions(env: TemporalEnv): TemporalConnectionOptions {
  return resolveTemporal(env).connection;
}
