import { isIP } from 'node:net';
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { validateFlakeRef } from '../hosts/shell';
import { fillFlakeRef, pinFlakeRefTemplate } from '../domain/flake-ref';
import { MAX_MANUAL_WINDOW_SECONDS } from '../domain/gc-roots';
import { DEFAULT_HOST_TIMEOUTS } from '../domain/host-timeouts';
import { defaultRollout } from '../domain/rollout';
import { hoistTimeouts } from '../domain/host-refs';
import { DEFAULT_UNDO_RETENTION_DAYS, MAX_UNDO_RETENTION_DAYS } from '../domain/undo';
import { DEFAULT_REBOOT_TIMEOUT_SECONDS } from '../domain/reboot';
import type { OfflinePolicy } from '../domain/offline';
import { isTimeZone, parseTimeOfDay, WEEKDAYS } from '../domain/windows';
import { NOTIFY_EVENTS } from '../domain/notify';
import { TARGET_NAME } from '../domain/notify-targets';
import {
  DEFAULT_FLAKE_REF_TEMPLATE,
  deploymentWorkflowId,
  type ChangeRef,
  type DeployInput,
  type HealthCheck,
  type HostSpec,
  type RolloutPolicy,
  type Wave,
} from '../domain/deployment';

/**
 * Everything here reaches a shell, a URL or a git ref, so each field is held to a strict pattern and
 * errors name the field (`hosts[2].address: …`). Values are shell-quoted as well where they are used.
 */
const hostName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'a host name: letters, digits, ".", "_", "-" (max 63), not starting with a symbol');
const DNS_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
/**
 * An IPv4 or IPv6 literal as node's `net.isIP` takes it (IPv6 bare, without brackets), or a DNS host
 * name: labels of 1 to 63 letters, digits and inner "-", at most 253 characters, and a last label that
 * is not a number (a resolver reads `1.2.3`, `2130706433` or `0x7f000001` as an IPv4 address).
 */
export function isHostAddress(s: string): boolean {
  if (s.length > 253) return false;
  if (isIP(s) !== 0) return true;
  const labels = s.split('.');
  const last = labels[labels.length - 1] ?? '';
  return labels.every((l) => DNS_LABEL.test(l)) && !/^[0-9]+$/.test(last) && !/^0x[0-9a-f]*$/i.test(last);
}
const address = z
  .string()
  .max(253, 'a DNS name or an IP address (at most 253 characters)')
  .refine(isHostAddress, 'a DNS host name (labels of letters, digits and "-", at most 63 each) or an IPv4 / IPv6 address (IPv6 without brackets)');
const unixUser = z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'a Unix user name: lowercase letters, digits, "_", "-"');
const flakeAttr = z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_@+-]{0,127}$/, 'a flake attribute: letters, digits, "_", "@", "+", "-"');
const ghOwner = z.string().regex(/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$/, 'a GitHub owner: letters, digits and "-"');
const ghRepo = z.string().regex(/^[A-Za-z0-9._-]{1,100}$/, 'a GitHub repository name').refine((s) => s !== '.' && s !== '..', 'not "." or ".."');
const branch = z
  .string()
  .regex(/^[A-Za-z0-9_][A-Za-z0-9._/-]{0,199}$/, 'a branch name: letters, digits, ".", "_", "/", "-"')
  .refine((s) => !s.includes('..') && !s.endsWith('.lock') && !s.endsWith('/') && !s.includes('//'), 'a valid git branch name');
export const commitSha = z.string().regex(/^[0-9a-f]{40}$/, 'a full 40-character lowercase commit sha');
const flakeRefTemplate = z
  .string()
  .regex(/^[A-Za-z0-9:/._?=&{}+@%~-]+$/, 'a flake reference template: no spaces or shell characters')
  .refine((s) => s.includes('{sha}'), 'must pin the commit with {sha}')
  .refine((s) => {
    // What the hosts will be given must pass the host-side check too, or every switch would fail late.
    try {
      validateFlakeRef(fillFlakeRef(s, { owner: 'o', repo: 'r', sha: '0'.repeat(40), branch: 'main' }));
      return true;
    } catch {
      return false;
    }
  }, 'a flake reference (github:…, git+https://…, git+file://…, path:/…) once {owner}, {repo}, {branch} and {sha} are filled in');
// A switch template is a switch command, not a shell line: the tool, then options, then --flake
// {flake}; every word is a plain token (no quotes, no shell characters), so it cannot smuggle a command.
// An option, with at most two plain values after it (`--option connect-timeout 5`); a value never
// starts with "-", so a template splits into words one way only (no catastrophic backtracking).
const OPTION = '--?[A-Za-z][A-Za-z0-9-]*(?: [A-Za-z0-9._=:/@+][A-Za-z0-9._=:/@+-]*){0,2}';
const commandTemplate = z
  .string()
  .min(1)
  .max(500)
  .regex(
    new RegExp(`^(?:sudo )?(?:nixos-rebuild|home-manager) switch(?: ${OPTION})* --flake \\{flake\\}(?: ${OPTION})*$`),
    'a switch command: "[sudo] nixos-rebuild|home-manager switch [--options] --flake {flake} [--options]", options with plain values only',
  );
/** Seconds, or a string such as 90s, 30m, 24h or 7d; at most 30 days either way (a string too: `99999d` is refused). */
const duration = z
  .union([
    z.number().int().min(0),
    z
      .string()
      .regex(/^\d{1,9}(s|m|h|d)$/, 'a duration such as 90s, 30m, 24h or 7d')
      .transform((s) => Number.parseInt(s, 10) * { s: 1, m: 60, h: 3600, d: 86400 }[s.slice(-1) as 's' | 'm' | 'h' | 'd']),
  ])
  .pipe(z.number().max(30 * 24 * 3600, 'at most 30d'));

/** A duration of at least one second and at most `max` seconds. */
const boundedDuration = (max: number, what: string) =>
  duration.pipe(z.number().min(1, `at least 1s`).max(max, `at most ${what}`));

/** Per-fleet host timeouts; the activity timeouts are derived from them (src/domain/host-timeouts.ts). */
/** The fleet file's `timeouts` when it names none (seconds), as the parsed file carries them. */
export const DEFAULT_FLEET_TIMEOUTS = { build: DEFAULT_HOST_TIMEOUTS.buildSeconds, activation: DEFAULT_HOST_TIMEOUTS.activationSeconds, health: DEFAULT_HOST_TIMEOUTS.healthSeconds };
const Timeouts = z.strictObject({
  /** Evaluation and build of one host's closure. */
  build: boundedDuration(24 * 3600, '24h').default(DEFAULT_HOST_TIMEOUTS.buildSeconds),
  /** One profile move or activation. */
  activation: boundedDuration(2 * 3600, '2h').default(DEFAULT_HOST_TIMEOUTS.activationSeconds),
  /** One round of health checks on a host. */
  health: boundedDuration(3600, '1h').default(DEFAULT_HOST_TIMEOUTS.healthSeconds),
});

const healthCheck = z.union([
  z.literal('systemd'),
  z.strictObject({ http: z.string().url().regex(/^https?:\/\//, 'an http(s) URL'), timeout: duration.default(10) }),
  z.strictObject({
    command: z
      .string()
      .min(1)
      .max(500)
      .refine((c) => !/[\n\r\0]/.test(c), 'a single line')
      .refine((c) => !/\{[A-Za-z]+\}/.test(c), 'no placeholders in a check command'),
    timeout: duration.default(30),
  }),
]);

const notifyEvents = z.array(z.enum(NOTIFY_EVENTS, { error: `an event: ${NOTIFY_EVENTS.join(', ')}` })).min(1).default([...NOTIFY_EVENTS]);
const NamedNotify = z.strictObject({
  target: z.string().regex(TARGET_NAME, 'a target name configured on the worker (a-z, 0-9, "-", starting with a letter, at most 40)'),
  events: notifyEvents,
  /** How long before the manual window closes the reminder is sent. */
  remindBefore: duration.default(3600),
});
/** Deprecated: the URL travels in the workflow's input and history. */
const UrlNotify = z.strictObject({
  url: z.string().url().regex(/^https?:\/\//, 'an http(s) URL').max(2000),
  secretEnv: z.string().regex(/^[A-Z_][A-Z0-9_]{0,63}$/, 'an environment variable name (A-Z, 0-9, "_")'),
  events: notifyEvents,
  remindBefore: duration.default(3600),
});
/** `{target, events?, remindBefore?}`, or the deprecated `{url, secretEnv, …}`: chosen by the `url` key, so errors name the field. */
const NotifyEntry = z.unknown().transform((v, ctx): z.output<typeof NamedNotify> | z.output<typeof UrlNotify> => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    ctx.addIssue({ code: 'custom', message: 'an object: {target, events?, remindBefore?}' });
    return z.NEVER;
  }
  const r = ('url' in v ? UrlNotify : NamedNotify).safeParse(v);
  if (r.success) return r.data;
  for (const issue of r.error.issues) ctx.addIssue({ code: 'custom', message: issue.message, path: issue.path });
  return z.NEVER;
});

/** `fail`, `skip` or `wait DURATION` (e.g. `wait 8h`: a sleeping laptop is waited for, then deployed). */
const offlinePolicy = z
  .string()
  .regex(/^(?:fail|skip|wait \d+(?:s|m|h|d))$/, 'fail, skip, or wait DURATION (such as wait 30m, wait 8h)')
  .transform((s, ctx): OfflinePolicy => {
    if (s === 'fail' || s === 'skip') return { mode: s };
    const r = boundedDuration(7 * 86400, '7d').safeParse(s.slice(5));
    if (!r.success) {
      ctx.addIssue({ code: 'custom', message: `wait: ${r.error.issues[0]?.message ?? 'a duration'}` });
      return z.NEVER;
    }
    return { mode: 'wait', waitSeconds: r.data };
  });
const timeOfDay = z.string().refine((s) => parseTimeOfDay(s) !== undefined, 'a time of day, "HH:MM" or "HH:MM:SS" (24-hour, 00:00 to 23:59:59)');
/** A maintenance window (src/domain/windows.ts): opens on each of `days` at `start`, closes at `end` (the next day when `end` is not after `start`). */
const MaintenanceWindow = z
  .strictObject({
    days: z.array(z.enum(WEEKDAYS, { error: `a weekday: ${WEEKDAYS.join(', ')}` })).min(1, 'at least one weekday'),
    start: timeOfDay,
    end: timeOfDay,
    timeZone: z.string().refine(isTimeZone, 'an IANA time zone name such as "Europe/Berlin" or "UTC" (not an offset)'),
  })
  .refine((w) => w.start !== w.end, { message: 'start and end must differ (a window of no length, or of 24 hours: list the days instead)', path: ['end'] });

const Rollout = z.strictObject({
  /** Deployments and waves start only inside one of these (none: any time). */
  windows: z.array(MaintenanceWindow).max(50).optional(),
  waves: z
    .array(
      z.strictObject({
        name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$/, 'a wave name: letters, digits, ".", "_", "-"'),
        hosts: z.array(hostName).min(1, 'at least one host'),
        maxParallel: z.number().int().min(1).max(500).default(1),
        bake: duration.default(0),
      }),
    )
    .min(1)
    .optional(),
  failureBudget: z.number().int().min(0).default(0),
  hold: z.array(hostName).default([]),
  buildFirst: z.boolean().default(false),
  failedUnits: z.enum(['fatal', 'tolerate']).default('fatal'),
  healthChecks: z.array(healthCheck).default([]),
  healthGrace: duration.default(0),
  allowQuarantined: z.boolean().default(false),
  /** Connectivity confirmation: hosts roll themselves back unless reached over a new connection in time. */
  confirmTimeout: duration.pipe(z.number().max(3600, 'at most 1h (the host waits that long before it rolls itself back)')).default(0),
  /** A wave larger than this runs as several child workflows in turn (history limits). */
  hostsPerChild: z.number().int().min(1).max(300).optional(),
  /**
   * NixOS hosts: `switch-to-configuration boot` and a reboot instead of a switch (when-needed: kernel,
   * initrd or modules changed). `never` switches as without it and shows whether a reboot is needed;
   * absent: as before (no reboot, nothing read).
   */
  reboot: z.enum(['never', 'when-needed', 'always']).optional(),
  /** How long a rebooting host may take to come back with the new generation. */
  rebootTimeout: boundedDuration(6 * 3600, '6h').default(DEFAULT_REBOOT_TIMEOUT_SECONDS),
  /** A host that does not answer the probe before its build: fail (default), skip, or wait DURATION. */
  offline: offlinePolicy.optional(),
});

export const HostEntry = z.strictObject({
  name: hostName,
  address,
  port: z.number().int().min(1).max(65535).optional(),
  user: unixUser.optional(),
  kind: z.enum(['nixos', 'home-manager']),
  attr: flakeAttr.optional(),
  commands: z.strictObject({ switch: commandTemplate.optional() }).optional(),
});

export const FleetFile = z
  .strictObject({
    repository: z.strictObject({
      owner: ghOwner,
      name: ghRepo,
      branch: branch.default('main'),
      /** How the deployer merges the pull request; absent: the first the repository allows (merge, squash, rebase). */
      mergeMethod: z.enum(['merge', 'squash', 'rebase']).optional(),
    }),
    flakeRef: flakeRefTemplate.default(DEFAULT_FLAKE_REF_TEMPLATE),
    onFailure: z
      .strictObject({
        revert: z.enum(['off', 'commit', 'pull-request']).default('commit'),
        rollbackHosts: z.boolean().default(true),
      })
      .default({ revert: 'commit', rollbackHosts: true }),
    // Bounded: the sweep of stale GC roots relies on no deployment holding them longer (gcSweepAgeSeconds).
    manualWindow: duration.pipe(z.number().max(MAX_MANUAL_WINDOW_SECONDS, 'at most 30d')).default(24 * 3600),
    timeouts: Timeouts.default(DEFAULT_FLEET_TIMEOUTS),
    defaults: z.strictObject({ user: unixUser.optional(), port: z.number().int().min(1).max(65535).optional() }).default({}),
    hosts: z.array(HostEntry).min(1, 'at least one host'),
    rollout: Rollout.optional(),
    /**
     * Tell the on-call: each target gets a signed JSON body (Slack-compatible `text`) on the events it
     * lists (src/domain/notify.ts). A target is a name the worker resolves to its URL and HMAC secret
     * from its own configuration (src/domain/notify-targets.ts): neither is in the fleet file nor in
     * the workflow's history. The older `url` + `secretEnv` form is still taken, deprecated
     * (notifyWarnings): its URL travels in the workflow's input.
     */
    notify: z.array(NotifyEntry).max(10).optional(),
    /**
     * Start from GitHub (the API's webhook route): a pull request into the branch that changes
     * flake.lock starts its deployment once it is approved (onApproval, default true) or carries `label`.
     */
    autoDeploy: z
      .strictObject({
        onApproval: z.boolean().default(true),
        label: z
          .string()
          .min(1)
          .max(50)
          .refine((l) => ![...l].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f), 'a label name (no control characters)')
          .optional(),
      })
      .optional(),
    /**
     * Undo a deployment that succeeded (issue 17): for `retentionDays` after it closed (default 14),
     * from the results the audit store keeps; `confirmWindow`: how long an undo waits for its
     * confirmation (default 1h). Absent: those defaults (undoSettings).
     */
    undo: z
      .strictObject({
        retentionDays: z.number().int('whole days').min(1, 'at least 1 day').max(MAX_UNDO_RETENTION_DAYS, `at most ${MAX_UNDO_RETENTION_DAYS} days`).default(DEFAULT_UNDO_RETENTION_DAYS),
        confirmWindow: boundedDuration(24 * 3600, '24h').default(3600),
      })
      .optional(),
  })
  .superRefine((f, ctx) => {
    const seen = new Map<string, number>();
    f.hosts.forEach((h, i) => {
      const prev = seen.get(h.name);
      if (prev !== undefined) ctx.addIssue({ code: 'custom', path: ['hosts', i, 'name'], message: `duplicate host name "${h.name}" (also hosts[${prev}])` });
      seen.set(h.name, i);
    });
    const inWave = new Map<string, string>();
    f.rollout?.waves?.forEach((w, wi) =>
      w.hosts.forEach((n, hi) => {
        if (!seen.has(n)) ctx.addIssue({ code: 'custom', path: ['rollout', 'waves', wi, 'hosts', hi], message: `no host named "${n}" in hosts` });
        const other = inWave.get(n);
        if (other !== undefined) ctx.addIssue({ code: 'custom', path: ['rollout', 'waves', wi, 'hosts', hi], message: `"${n}" is already in wave ${other}` });
        inWave.set(n, w.name);
      }),
    );
    if (f.rollout?.waves) {
      f.hosts.forEach((h, i) => {
        if (!inWave.has(h.name) && !f.rollout?.hold.includes(h.name)) {
          ctx.addIssue({ code: 'custom', path: ['hosts', i, 'name'], message: `"${h.name}" is in no rollout wave (add it to one, or to rollout.hold)` });
        }
      });
    }
    f.rollout?.hold.forEach((n, i) => {
      if (!seen.has(n)) ctx.addIssue({ code: 'custom', path: ['rollout', 'hold', i], message: `no host named "${n}" in hosts` });
    });
  });
export type FleetFile = z.infer<typeof FleetFile>;

/** The fleet's undo settings, its defaults filled in. */
export function undoSettings(fleet: FleetFile): { retentionDays: number; confirmWindowSeconds: number } {
  return { retentionDays: fleet.undo?.retentionDays ?? DEFAULT_UNDO_RETENTION_DAYS, confirmWindowSeconds: fleet.undo?.confirmWindow ?? 3600 };
}

/** A pull request number: a positive integer within GitHub's 32-bit range. */
export const pullRequestNumber = z.number().int('a pull request number: a whole number').positive('a pull request number: 1 or more').max(2_147_483_647);
const PullRequestChange = z.strictObject({ pullRequest: pullRequestNumber, expectedHeadSha: commitSha.optional() });
const CommitChange = z.strictObject({ commit: commitSha, pullRequest: pullRequestNumber.optional() });
/**
 * `{pullRequest, expectedHeadSha?}` or `{commit, pullRequest?}`. The shape is chosen by the `commit`
 * key first, so an error names the field (`change.pullRequest: …`), not just `change: Invalid input`
 * as a union of the two would.
 */
export const ChangeInput = z.unknown().transform((v, ctx): z.infer<typeof PullRequestChange> | z.infer<typeof CommitChange> => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    ctx.addIssue({ code: 'custom', message: 'an object: {pullRequest, expectedHeadSha?} or {commit, pullRequest?}' });
    return z.NEVER;
  }
  const r = ('commit' in v ? CommitChange : PullRequestChange).safeParse(v);
  if (r.success) return r.data;
  for (const issue of r.error.issues) ctx.addIssue({ code: 'custom', message: issue.message, path: issue.path });
  return z.NEVER;
});
export type ChangeInput = z.output<typeof ChangeInput>;

/** A zod error as one line per issue, each naming the field: `hosts[2].address: a DNS name or an IP address`. */
export function formatZodError(err: z.ZodError, root = ''): string {
  return err.issues
    .map((issue) => {
      const path = issue.path.reduce<string>(
        (acc, part) => (typeof part === 'number' ? `${acc}[${part}]` : acc ? `${acc}.${String(part)}` : String(part)),
        root,
      );
      return `${path || '(input)'}: ${issue.message}`;
    })
    .join('\n');
}

export class InputError extends Error {
  readonly code = 'INVALID_INPUT';
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}

export function parseWith<T>(schema: z.ZodType<T>, value: unknown, root = ''): T {
  const result = schema.safeParse(value);
  if (!result.success) throw new InputError(formatZodError(result.error, root));
  return result.data;
}

/** Parses a fleet file's text, YAML or JSON (JSON is YAML). */
export function parseFleetFile(text: string, source = 'fleet file'): FleetFile {
  let raw: unknown;
  try {
    raw = parseYaml(text, { prettyErrors: true });
  } catch (err) {
    throw new InputError(`${source}: not valid YAML/JSON: ${(err as Error).message}`);
  }
  return parseWith(FleetFile, raw);
}

export function hostsOf(fleet: FleetFile): HostSpec[] {
  return fleet.hosts.map((h) => ({
    name: h.name,
    address: h.address,
    port: h.port ?? fleet.defaults.port ?? 22,
    user: h.user ?? fleet.defaults.user ?? 'root',
    kind: h.kind,
    attr: h.attr ?? h.name,
    ...(h.commands ? { commands: h.commands } : {}),
    timeouts: { buildSeconds: fleet.timeouts.build, activationSeconds: fleet.timeouts.activation, healthSeconds: fleet.timeouts.health },
  }));
}

export function changeOf(change: ChangeInput): ChangeRef {
  return 'commit' in change
    ? { kind: 'commit', sha: change.commit, ...(change.pullRequest ? { pullRequest: change.pullRequest } : {}) }
    : { kind: 'pull-request', number: change.pullRequest, ...(change.expectedHeadSha ? { expectedHeadSha: change.expectedHeadSha } : {}) };
}

export function buildDeployInput(fleet: FleetFile, change: ChangeInput, requestedBy: string, opts: { searchAttributes?: boolean } = {}): DeployInput {
  const repository = {
    owner: fleet.repository.owner,
    name: fleet.repository.name,
    branch: fleet.repository.branch,
    ...(fleet.repository.mergeMethod ? { mergeMethod: fleet.repository.mergeMethod } : {}),
  };
  const ref = changeOf(change);
  return {
    deploymentId: deploymentWorkflowId(repository, ref),
    repository,
    change: ref,
    ...hoistTimeouts(hostsOf(fleet)),
    flakeRefTemplate: pinFlakeRefTemplate(fleet.flakeRef, fleet.repository.branch),
    onFailure: fleet.onFailure,
    manualWindowSeconds: fleet.manualWindow,
    requestedBy,
    searchAttributes: opts.searchAttributes ?? true,
    ...(fleet.rollout ? { rollout: rolloutOf(fleet) } : {}),
    ...(fleet.notify ? { notify: fleet.notify } : {}),
  };
}

/** The fleet file's rollout as the workflow takes it: waves in order (hosts of no wave are held). */
export function rolloutOf(fleet: FleetFile): RolloutPolicy {
  const r = fleet.rollout;
  const defaults = defaultRollout(fleet.hosts.map((h) => h.name));
  const waves: Wave[] = r?.waves ? r.waves.map((w) => ({ name: w.name, hosts: w.hosts, maxParallel: w.maxParallel, bakeSeconds: w.bake })) : defaults.waves;
  const healthChecks: HealthCheck[] = (r?.healthChecks ?? []).map((c) =>
    c === 'systemd' ? { kind: 'systemd' } : 'http' in c ? { kind: 'http', url: c.http, timeoutSeconds: c.timeout } : { kind: 'command', command: c.command, timeoutSeconds: c.timeout },
  );
  return {
    waves,
    failureBudget: r?.failureBudget ?? defaults.failureBudget,
    held: r?.hold ?? defaults.held,
    buildFirst: r?.buildFirst ?? defaults.buildFirst,
    failedUnits: r?.failedUnits ?? defaults.failedUnits,
    healthChecks,
    healthGraceSeconds: r?.healthGrace ?? defaults.healthGraceSeconds,
    allowQuarantined: r?.allowQuarantined ?? defaults.allowQuarantined,
    confirmTimeoutSeconds: r?.confirmTimeout ?? defaults.confirmTimeoutSeconds,
    ...(r?.hostsPerChild ? { hostsPerChild: r.hostsPerChild } : {}),
    // Only when set, so a fleet file without them gives the workflow the input it always had.
    ...(r?.reboot ? { reboot: r.reboot, rebootTimeoutSeconds: r.rebootTimeout } : {}),
    ...(r?.offline ? { offline: r.offline } : {}),
    ...(r?.windows ? { windows: r.windows } : {}),
  };
}
