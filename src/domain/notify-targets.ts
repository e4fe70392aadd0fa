/**
 * Notification targets by name (issue 17): the fleet file says `notify: [{ target: oncall, … }]`,
 * and the worker resolves `oncall` to a URL and a signing secret from its own configuration, so no URL
 * (a Slack URL's path is a token) and no secret reaches a workflow's input or history.
 *
 * The worker's configuration, either or both (the file wins for a name in both):
 * - `NIXFLEET_NOTIFY_TARGETS_FILE`: a JSON file `{ "oncall": { "url": "https://…", "secret": "…" } }`
 *   (or `"secretFile": "/run/secrets/oncall"` in place of `"secret"`);
 * - `NIXFLEET_NOTIFY_<NAME>_URL` and `NIXFLEET_NOTIFY_<NAME>_SECRET`, NAME the target's name in upper
 *   case with `-` as `_` (`oncall` → `NIXFLEET_NOTIFY_ONCALL_URL`).
 *
 * Pure: the lookup here, the file's schema in src/schemas/notify-targets.schema.ts; the worker reads the
 * files (activities/notify.ts).
 */
import type { TargetEntry } from '../schemas/notify-targets.schema';

/** A target's name as the fleet file writes it. */
export const TARGET_NAME = /^[a-z][a-z0-9-]{0,39}$/;

export interface ResolvedTarget {
  url: string;
  secret: string;
}

/** One entry of the targets file before its `secretFile` is read (checked by src/schemas/notify-targets.schema.ts). */
export type { TargetEntry };

/** The environment variable prefix for a target's URL and secret: `NIXFLEET_NOTIFY_<NAME>_`. */
export function targetEnvPrefix(name: string): string {
  return `NIXFLEET_NOTIFY_${name.toUpperCase().replace(/-/g, '_')}_`;
}

/**
 * The URL and secret of `name`: from the targets file's entries (its `secretFile` read by
 * `readSecret`), else from the environment. A missing target or secret is an error naming what to set.
 */
export function resolveTarget(name: string, entries: Readonly<Record<string, TargetEntry>>, env: Readonly<Record<string, string | undefined>>, readSecret: (file: string) => string): ResolvedTarget {
  const entry = Object.hasOwn(entries, name) ? entries[name] : undefined;
  if (entry) {
    const secret = entry.secret ?? readSecret(entry.secretFile as string).trim();
    if (!secret) throw new Error(`notification target ${name}: its secretFile is empty`);
    return { url: entry.url, secret };
  }
  const prefix = targetEnvPrefix(name);
  const url = env[`${prefix}URL`];
  const secret = env[`${prefix}SECRET`];
  if (!url) throw new Error(`notification target ${name} is not configured on the worker: add it to NIXFLEET_NOTIFY_TARGETS_FILE or set ${prefix}URL and ${prefix}SECRET`);
  if (!/^https?:\/\/[^\s]+$/.test(url)) throw new Error(`${prefix}URL: an http(s) URL`);
  if (!secret) throw new Error(`notification target ${name}: ${prefix}SECRET is not set in the worker's environment`);
  return { url, secret };
}

/** The fleet file's deprecation warnings about `notify` (the old URL form puts the URL into history). */
export function notifyWarnings(notify: ReadonlyArray<{ url?: string; target?: string }> | undefined): string[] {
  return (notify ?? []).flatMap((t, i) =>
    t.url !== undefined
      ? [`notify[${i}]: url + secretEnv is deprecated: the URL travels in the workflow's input and Temporal history (a Slack URL's path is its token); name a target configured on the worker instead (notify: [{ target: NAME }], NIXFLEET_NOTIFY_TARGETS_FILE)`]
      : [],
  );
}
