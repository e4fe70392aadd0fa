import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { TASK_QUEUE } from './domain/deployment';
import { formatZodError } from './schemas/fleet.schema';

/** Where the worker, the API and the CLI find Temporal. Defaults are the embedded dev server. */
export const TemporalEnv = z.object({
  TEMPORAL_ADDRESS: z.string().min(1).default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default(TASK_QUEUE),
  /** mTLS to a self-hosted cluster or Temporal Cloud: client certificate and key files (PEM). */
  TEMPORAL_TLS_CERT: z.string().optional(),
  TEMPORAL_TLS_KEY: z.string().optional(),
  /** CA bundle for a server certificate that is not publicly trusted. */
  TEMPORAL_TLS_CA: z.string().optional(),
  TEMPORAL_TLS_SERVER_NAME: z.string().optional(),
  /** Enables TLS without client certificates (e.g. API-key auth). */
  TEMPORAL_TLS: z.enum(['0', '1', 'true', 'false']).optional(),
  TEMPORAL_API_KEY: z.string().optional(),
});
export type TemporalEnv = z.infer<typeof TemporalEnv>;

/** What the worker needs to reach hosts and GitHub. */
export const WorkerEnv = TemporalEnv.extend({
  GITHUB_API_URL: z.string().url().default('https://api.github.com'),
  GITHUB_TOKEN: z.string().min(1, 'a GitHub token with contents and pull requests read/write'),
  /** The deployer's SSH private key (file). */
  NIXFLEET_SSH_KEY: z.string().min(1),
  /** known_hosts pinning every host's key; an unknown or changed key refuses to connect. */
  NIXFLEET_KNOWN_HOSTS: z.string().min(1),
});
export type WorkerEnv = z.infer<typeof WorkerEnv>;

/**
 * systemd credentials (LoadCredential=NAME:PATH, found under $CREDENTIALS_DIRECTORY) for the settings
 * that hold secrets. A variable set in the environment wins; a credential fills it when it is unset.
 * `value`: the file's content is the setting (trailing newline dropped); `path`: the setting is a file
 * name, and the credential's path is used.
 */
export const CREDENTIALS: Record<string, { credential: string; as: 'value' | 'path' }> = {
  GITHUB_TOKEN: { credential: 'github-token', as: 'value' },
  NIXFLEET_SSH_KEY: { credential: 'ssh-key', as: 'path' },
  NIXFLEET_KNOWN_HOSTS: { credential: 'known-hosts', as: 'path' },
  NIXFLEET_API_TOKENS_FILE: { credential: 'api-tokens', as: 'path' },
  TEMPORAL_API_KEY: { credential: 'temporal-api-key', as: 'value' },
  TEMPORAL_TLS_CERT: { credential: 'temporal-tls-cert', as: 'path' },
  TEMPORAL_TLS_KEY: { credential: 'temporal-tls-key', as: 'path' },
  TEMPORAL_TLS_CA: { credential: 'temporal-tls-ca', as: 'path' },
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

/** Connection options shared by Connection (client) and NativeConnection (worker). */
export function temporalConnectionOptions(env: TemporalEnv): TemporalConnectionOptions {
  const wantsTls = env.TEMPORAL_TLS === '1' || env.TEMPORAL_TLS === 'true' || env.TEMPORAL_TLS_CERT || env.TEMPORAL_TLS_CA || env.TEMPORAL_API_KEY;
  if (!wantsTls) return { address: env.TEMPORAL_ADDRESS };
  if ((env.TEMPORAL_TLS_CERT === undefined) !== (env.TEMPORAL_TLS_KEY === undefined)) {
    throw new Error('configuration error: TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together');
  }
  return {
    address: env.TEMPORAL_ADDRESS,
    tls: {
      ...(env.TEMPORAL_TLS_SERVER_NAME ? { serverNameOverride: env.TEMPORAL_TLS_SERVER_NAME } : {}),
      ...(env.TEMPORAL_TLS_CA ? { serverRootCACertificate: readFileSync(env.TEMPORAL_TLS_CA) } : {}),
      ...(env.TEMPORAL_TLS_CERT && env.TEMPORAL_TLS_KEY
        ? { clientCertPair: { crt: readFileSync(env.TEMPORAL_TLS_CERT), key: readFileSync(env.TEMPORAL_TLS_KEY) } }
        : {}),
    },
    ...(env.TEMPORAL_API_KEY ? { apiKey: env.TEMPORAL_API_KEY } : {}),
  };
}
