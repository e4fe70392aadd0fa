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
 * Pure: the parsing and the lookup; the worker reads the files (activities/notify.ts).
 */

/** A target's name as the fleet file writes it. */
export const TARGET_NAME = /^[a-z][a-z0-9-]{0,39}$/;

export interface ResolvedTarget {
  url: string;
  secret: string;
}

/** One entry of the targets file before its `secretFile` is read. */
export interface TargetEntry {
  url: string;
  secret?: string;
  secretFile?: string;
}

/** The environment variable prefix for a target's URL and secret: `NIXFLEET_NOTIFY_<NAME>_`. */
export function targetEnvPrefix(name: string): string {
  return `NIXFLEET_NOTIFY_${name.toUpperCase().replace(/-/g, '_')}_`;
}

/**
 * The targets file's entries, checked: an object of names to `{url, secret | secretFile}`. Errors
 * name the entry and the field (never the secret, nor the URL's path).
 */
export function parseTargetsFile(text: string, where: string): Record<string, TargetEntry> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`${where}: not JSON (${(err as Error).message.split('\n')[0]})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${where}: an object of target names to { url, secret | secretFile }`);
  const out: Record<string, TargetEntry> = {};
  for (const [name, v] of Object.entries(raw as Record<string, unknown>)) {
    const at = `${where}: ${name}`;
    if (!TARGET_NAME.test(name)) throw new Error(`${at}: a target name (a-z, 0-9, "-", starting with a letter, at most 40)`);
    if (typeof v !== 'object' || v === null) throw new Error(`${at}: { url, secret | secretFile }`);
    const e = v as Record<string, unknown>;
    const extra = Object.keys(e).filter((k) => k !== 'url' && k !== 'secret' && k !== 'secretFile');
    if (extra.length) throw new Error(`${at}: unknown field ${extra.join(', ')}`);
    if (typeof e.url !== 'string' || !/^https?:\/\/[^\s]+$/.test(e.url) || e.url.length > 2000) throw new Error(`${at}.url: an http(s) URL`);
    const hasSecret = typeof e.secret === 'string' && e.secret !== '';
    const hasFile = typeof e.secretFile === 'string' && e.secretFile !== '';
    if (hasSecret === hasFile) throw new Error(`${at}: exactly one of secret, secretFile`);
    out[name] = { url: e.url, ...(hasSecret ? { secret: e.secret as string } : { secretFile: e.secretFile as string }) };
  }
  return out;
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
