/**
 * What an audit entry may hold, and how any entry is made to fit before it is written. Pure (bundled
 * into workflow code): the workflow bounds every entry with `storableAuditEntry`, so the store never
 * has a reason to refuse one, whatever an operator or a signal sent.
 */
import type { AuditEntry } from './deployment';

/** Every action an audit entry can carry; `invalid-request` is a request whose action is none of the manual ones; `undo`: a succeeded deployment undone later (src/domain/undo.ts); six operator controls (src/domain/controls.ts); `start-now` and `notify`: maintenance windows and notifications. */
export const AUDIT_ACTIONS = ['deploy', 'merge', 'auto-compensate', 'revert', 'revert-and-rollback', 'dismiss', 'invalid-request', 'undo', 'pause', 'resume', 'abort', 'skip', 'retry-failed', 'promote', 'start-now', 'notify'] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/** The audit store's limits (UTF-16 code units, as JavaScript and zod count). */
export const AUDIT_LIMITS = {
  /** The longest deployment id the schema's names can give is 360 (tests/property/ids.property.test.ts). */
  deploymentId: 400,
  /** A Temporal run id is a UUID (36). */
  runId: 100,
  repository: 250,
  at: 64,
  actor: 200,
  reverted: 500,
  hostName: 100,
  outcome: 10_000,
  /** A Nix store path in a deployment's results. */
  storePath: 500,
  /** Hosts in one deployment's results (a fleet file's hosts). */
  resultsHosts: 20_000,
} as const;

/** An entry as anything may have built it: fields of any type, from a signal nobody validated. */
export interface RawAuditEntry {
  at: unknown;
  actor: unknown;
  action: unknown;
  reverted?: unknown;
  hosts: unknown;
  outcome: unknown;
}

/**
 * `s` cut to at most `max` code units. A cut text ends in `…[N chars]` (N: the original length), so a
 * reader sees that it was summarized and by how much; a surrogate pair is never split.
 */
export function clip(s: string, max: number): string {
  if (s.length <= max) return s;
  const mark = `…[${s.length} chars]`;
  let keep = Math.max(0, max - mark.length);
  if (keep > 0 && isHighSurrogate(s.charCodeAt(keep - 1))) keep -= 1;
  return `${s.slice(0, keep)}${mark}`.slice(0, max);
}

const isHighSurrogate = (c: number): boolean => c >= 0xd800 && c <= 0xdbff;

/**
 * A lone surrogate (not valid Unicode, so not storable as UTF-8) and NUL (which PostgreSQL's text
 * refuses) become U+FFFD.
 */
function wellFormed(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]|\u0000/g, '\ufffd');
}

/** Control characters (line breaks included) become spaces: one line of valid text. */
function oneLine(s: string): string {
  // eslint-disable-next-line no-control-regex
  return wellFormed(s.replace(/[\u0000-\u001f\u007f]/g, ' '));
}

function text(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

/**
 * The entry bounded to what the store takes: a known action (anything else is `invalid-request`), an
 * actor of one line within 200 characters (`unknown` when missing), at most 500 characters of
 * `reverted`, host names within 100 characters, an outcome (line breaks kept, NUL made U+FFFD) within 10,000 characters (summarized with
 * `…[N chars]`). An entry already within the limits comes back unchanged; applying it twice changes
 * nothing more.
 */
export function storableAuditEntry(raw: RawAuditEntry): AuditEntry {
  const at = clip(oneLine(text(raw.at) ?? ''), AUDIT_LIMITS.at) || '1970-01-01T00:00:00.000Z';
  const actor = clip(oneLine(text(raw.actor) ?? '').trim(), AUDIT_LIMITS.actor) || 'unknown';
  const action: AuditAction = (AUDIT_ACTIONS as readonly unknown[]).includes(raw.action) ? (raw.action as AuditAction) : 'invalid-request';
  const reverted = text(raw.reverted);
  const hosts = Array.isArray(raw.hosts) ? raw.hosts.map((h) => clip(oneLine(text(h) ?? '?'), AUDIT_LIMITS.hostName)) : [];
  const outcome = clip(wellFormed(text(raw.outcome) ?? ''), AUDIT_LIMITS.outcome);
  return {
    at,
    actor,
    action,
    ...(reverted !== undefined && reverted !== '' ? { reverted: clip(oneLine(reverted), AUDIT_LIMITS.reverted) } : {}),
    hosts,
    outcome,
  };
}

/**
 * How many refusals the trail records: an operator, a script or a stranger repeating a request that is
 * refused (an update or control that does not apply, a malformed signal) must not grow the history and
 * the trail without limit. A refusal is recorded unless
 * - the trail's last entry is the same refusal (same actor, action, hosts, outcome): identical
 *   consecutive refusals are coalesced into the first, or
 * - its actor has `perActor` refusals in the trail already, or the trail has `total` of them (an actor
 *   that changes its name each time meets `total`).
 * A refused update not recorded is rejected by its validator instead (no history); a refused signal not
 * recorded is counted in the status (`refusalsNotRecorded`): its own event is the only history it adds.
 */
export const REFUSAL_AUDIT_LIMITS = { perActor: 10, total: 50 } as const;

/** A refusal, as the workflows word them: `refused: …` (updates), `rejected: …` and `confirmation rejected: …` (signals). */
export function isRefusal(a: Pick<AuditEntry, 'outcome'>): boolean {
  return a.outcome.startsWith('refused: ') || a.outcome.startsWith('rejected: ') || a.outcome.startsWith('confirmation rejected: ');
}

/** Whether this refusal gets an entry in `trail` (REFUSAL_AUDIT_LIMITS), compared as the trail stores it. */
export function refusalRecorded(trail: readonly AuditEntry[], raw: Omit<RawAuditEntry, 'at'>, limits: { perActor: number; total: number } = REFUSAL_AUDIT_LIMITS): boolean {
  const e = storableAuditEntry({ at: '', ...raw });
  const last = trail.at(-1);
  if (last && isRefusal(last) && last.actor === e.actor && last.action === e.action && last.outcome === e.outcome && last.hosts.join('\n') === e.hosts.join('\n')) return false;
  let mine = 0;
  let all = 0;
  for (const a of trail) {
    if (!isRefusal(a)) continue;
    all += 1;
    if (a.actor === e.actor) mine += 1;
  }
  return mine < limits.perActor && all < limits.total;
}
