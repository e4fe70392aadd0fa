import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { WebSocket } from 'ws';
import type { DeploymentStatus, HostStatus, RollbackPreview } from '../domain/deployment';
import { actionHosts, DEFAULT_PAGE_SIZE, HOST_STATES, MAX_PAGE_SIZE, summarize, type HostPage, type StateCounts, type StatusSummary } from '../domain/host-pages';
import { formatClosureChange, formatClosureSummary } from '../domain/closure-diff';
import { CONTROLS } from '../domain/controls';
import { generationTrail } from '../domain/presentation';
import { notifyWarnings } from '../domain/notify-targets';
import { InputError, parseFleetFile } from '../schemas/fleet.schema';
import type { DeployPlan } from '../../workflows/dry-run';
import type { UndoStatus } from '../domain/undo';
import { importFleet, nixEval, type ImportSource } from './import';

/** Exit codes: scripts can tell a failed deployment that was rolled back from one that was not. */
export const EXIT = {
  ok: 0,
  error: 1,
  usage: 64,
  failedRolledBack: 10,
  failedRollbackIncomplete: 11,
  failedNotRolledBack: 12,
} as const;

const USAGE = `nixfleet — deploy a flake.lock update to a fleet, and undo it

  nixfleet validate FLEET_FILE
  nixfleet import --from deploy-rs|colmena FLAKE --repository OWNER/NAME [--branch B] [--out FLEET_FILE [--overwrite]]
  nixfleet deploy --fleet FLEET_FILE (--pr N [--head SHA] | --commit SHA) [--no-wait] [--dry-run [--diff] [--json]]
  nixfleet list
  nixfleet status DEPLOYMENT [--page N] [--page-size N] [--state STATE] [--wave WAVE] [--all] [--json] [--follow]
  nixfleet rollback DEPLOYMENT [--revert-only] [--mode commit|pull-request] [--reason TEXT] [--yes]
  nixfleet dismiss DEPLOYMENT [--reason TEXT]
  nixfleet control DEPLOYMENT pause|resume|abort|promote|retry-failed [--reason TEXT]
  nixfleet control DEPLOYMENT skip HOST [--reason TEXT]
  nixfleet start-now DEPLOYMENT [--reason TEXT] [--all-waves]
  nixfleet audit [DEPLOYMENT] [--json]
  nixfleet undo DEPLOYMENT --fleet FLEET_FILE [--host NAME]... [--mode commit|pull-request] [--yes] [--json]

Environment: NIXFLEET_API_URL (default http://127.0.0.1:8787), NIXFLEET_TOKEN (bearer token).
Exit status: 0 ok; 10 failed, rolled back; 11 failed, rollback incomplete or revert failed; 12 failed, not rolled back; 1 error; 64 usage.`;

class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  confirm: (question: string) => Promise<boolean>;
  env: NodeJS.ProcessEnv;
}

/** Bodies over this many bytes are sent gzip-compressed. */
const GZIP_OVER_BYTES = 64 * 1024;

function api(io: Io) {
  const base = (io.env.NIXFLEET_API_URL ?? 'http://127.0.0.1:8787').replace(/\/$/, '');
  const token = io.env.NIXFLEET_TOKEN;
  return async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const text0 = body === undefined ? undefined : JSON.stringify(body);
    // A large body (a fleet file of thousands of hosts) travels gzip-compressed; the API decompresses it.
    const zipped = text0 !== undefined && text0.length > GZIP_OVER_BYTES ? gzipSync(text0) : undefined;
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(zipped ? { 'content-encoding': 'gzip' } : {}) },
      body: zipped ?? text0,
    });
    const text = await res.text();
    const json = text ? (JSON.parse(text) as unknown) : undefined;
    if (!res.ok) throw new ApiError(res.status, (json as { message?: string } | undefined)?.message ?? `HTTP ${res.status}`);
    return json as T;
  };
}

const pad = (s: string, n: number): string => (s.length >= n ? s : s + ' '.repeat(n - s.length));
/** Where the host has been and is now: `42 → 43 → 42` after a rollback. */
const gen = (h: HostStatus): string => generationTrail(h);

export function formatStatus(s: DeploymentStatus): string {
  const lines = [
    `deployment ${s.deploymentId}  ${s.repository.owner}/${s.repository.name}@${s.repository.branch}  phase: ${s.phase}${s.outcome ? `  outcome: ${s.outcome}` : ''}`,
  ];
  if (s.mergeSha) lines.push(`merge commit ${s.mergeSha}`);
  if (s.failure) lines.push(`⚠ ${s.failure}`);
  if (s.controls?.paused) lines.push(`⏸ paused by ${s.controls.pausedBy ?? 'an operator'}: no further host starts until resumed`);
  if (s.controls?.abortedBy) lines.push(`aborted by ${s.controls.abortedBy}`);
  if (s.controls?.skipped.length) lines.push(`skipped: ${s.controls.skipped.join(', ')}`);
  const rows = s.hosts.map((h) => [h.name, h.kind, h.state, gen(h), h.uncertain ?? h.error ?? '']);
  const header = ['HOST', 'KIND', 'STATE', 'GENERATION', 'NOTE'];
  const widths = header.map((_, i) => Math.max(header[i]!.length, ...rows.map((r) => r[i]!.length)));
  lines.push([header, ...rows].map((r) => r.map((c, i) => pad(c, widths[i]!)).join('  ').trimEnd()).join('\n'));
  if (s.revert) {
    lines.push(revertLine(s.revert));
  }
  if (s.auditFailures?.length) {
    lines.push(`⚠ ${s.auditFailures.length} audit entr${s.auditFailures.length === 1 ? 'y' : 'ies'} refused by the audit store (kept only in this deployment's trail):`);
    for (const f of s.auditFailures) lines.push(`  #${f.seq} ${f.action}: ${f.type}: ${f.error}`);
  }
  if (s.refusalsNotRecorded) lines.push(`⚠ ${s.refusalsNotRecorded} refused request${s.refusalsNotRecorded === 1 ? '' : 's'} past the trail's limit of refusals: answered and logged by the worker, not in the audit trail`);
  return lines.join('\n');
}

/** The revert's one line in the status: what was pushed or opened, or why it failed. */
function revertLine(r: NonNullable<DeploymentStatus['revert']>): string {
  if (r.kind === 'commit') return `revert: commit ${r.commitSha}${r.alreadyReverted ? ' (already reverted)' : ''}`;
  if (r.kind === 'pull-request') return `revert: pull request ${r.url}${r.fellBackFromProtectedBranch ? ' (branch protected)' : ''}`;
  return `revert FAILED: ${r.error}`;
}

const counts = (c: StateCounts): string =>
  HOST_STATES.filter((st) => c[st])
    .map((st) => `${c[st]} ${st}`)
    .join(' · ') || 'none';

/** A deployment at any size: its bounded summary (counts by state, wave by wave), without host lists. */
export function formatSummary(s: StatusSummary): string {
  const lines = [
    `deployment ${s.deploymentId}  ${s.repository.owner}/${s.repository.name}@${s.repository.branch}  phase: ${s.phase}${s.outcome ? `  outcome: ${s.outcome}` : ''}`,
  ];
  if (s.mergeSha) lines.push(`merge commit ${s.mergeSha}`);
  if (s.failure) lines.push(`⚠ ${s.failure}`);
  lines.push(`hosts: ${s.hosts.total}: ${counts(s.hosts.byState)}`);
  if (s.waves && s.waves.length > 1) {
    const width = Math.max(4, ...s.waves.map((w) => w.name.length));
    for (const w of s.waves) lines.push(`  wave ${pad(w.name, width)}  ${pad(w.state, 11)} ${w.total}: ${counts(w.byState)}`);
  }
  if (s.revert) {
    lines.push(revertLine(s.revert));
  }
  return lines.join('\n');
}

/** One page of a deployment's hosts, and how to get the next. */
export function formatHostPage(p: HostPage, filter: { state?: string; wave?: string } = {}): string {
  const rows = p.hosts.map((h) => [h.name, h.kind, h.state, gen(h), h.uncertain ?? h.error ?? '']);
  const header = ['HOST', 'KIND', 'STATE', 'GENERATION', 'NOTE'];
  const widths = header.map((_, i) => Math.max(header[i]!.length, ...rows.map((r) => r[i]!.length)));
  const which = [filter.wave ? `wave ${filter.wave}` : '', filter.state ? `state ${filter.state}` : ''].filter(Boolean).join(', ');
  const first = (p.page - 1) * p.pageSize + 1;
  const lines: string[] = [];
  if (rows.length > 0) lines.push([header, ...rows].map((r) => r.map((c, i) => pad(c, widths[i]!)).join('  ').trimEnd()).join('\n'));
  lines.push(
    p.total === 0
      ? `no hosts${which ? ` in ${which}` : ''}`
      : rows.length === 0
        ? `page ${p.page} is past the last (${p.pages}) of ${p.total} hosts${which ? ` in ${which}` : ''}`
        : `hosts ${first}–${first + rows.length - 1} of ${p.total}${which ? ` in ${which}` : ''} · page ${p.page} of ${p.pages}${p.page < p.pages ? ` (--page ${p.page + 1} for the next, --all for every host)` : ''}`,
  );
  return lines.join('\n');
}

/** A positive whole number option (`--page`, `--page-size`), at most `max`. */
function intOption(name: string, text: string | undefined, fallback: number, max: number): number {
  if (text === undefined) return fallback;
  const n = /^[1-9][0-9]{0,6}$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n > max) throw new InputError(`--${name}: a whole number from 1 to ${max}, got ${JSON.stringify(text)}`);
  return n;
}

/** The deployments list as a table whose columns fit their longest value (ids run to 360 characters). */
export function formatList(deployments: Array<{ deploymentId: string; status: string; phase?: string; outcome?: string; startTime?: string }>): string {
  const rows = deployments.map((d) => [d.deploymentId, d.status, d.phase ?? '', d.outcome ?? '', d.startTime ?? '']);
  const header = ['DEPLOYMENT', 'STATUS', 'PHASE', 'OUTCOME', 'STARTED'];
  const widths = header.map((_, i) => Math.max(header[i]!.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((c, i) => pad(c, widths[i]!)).join('  ').trimEnd()).join('\n');
}

export function formatPreview(p: RollbackPreview, revertOnly: boolean): string {
  const lines: string[] = [];
  if (p.revert.needed) lines.push(`Revert merge commit ${p.revert.mergeSha ?? '?'} on GitHub`);
  if (!revertOnly) {
    if (p.hosts.length === 0) lines.push('No host needs a rollback.');
    for (const h of p.hosts) lines.push(`Roll back ${h.name} (${h.state}) from generation ${h.from?.number ?? '?'} to ${h.to.number}`);
  }
  return lines.join('\n');
}

export function formatPlan(p: DeployPlan): string {
  const lines = [
    `dry run of ${p.deploymentId}: nothing is merged, built or switched`,
    `flake: ${p.flakeRef}`,
    `on failure: revert ${p.onFailure.revert}, roll back hosts ${p.onFailure.rollbackHosts ? 'yes' : 'no'}; failure budget ${p.failureBudget}; build first ${p.buildFirst ? 'yes' : 'no'}; ${p.healthChecks} health checks`,
  ];
  if (p.diffedAt) lines.push(`changes: built at ${p.diffedAt.source === 'commit' ? 'commit' : "the pull request's head"} ${p.diffedAt.sha.slice(0, 12)} (into the hosts' stores only)`);
  if (p.held.length > 0) lines.push(`held back: ${p.held.join(', ')}`);
  for (const w of p.waves) {
    lines.push(`wave ${w.name} (${w.maxParallel} at a time${w.bakeSeconds ? `, then bake ${w.bakeSeconds}s` : ''})`);
    for (const h of w.hosts) {
      lines.push(`  ${pad(h.name, 16)} ${pad(h.kind, 13)} ${h.address}  generation now: ${h.generationNow ? h.generationNow.number : `unknown (${h.error ?? '?'})`}`);
      for (const c of h.commands) lines.push(`      $ ${c}`);
      if (h.closureDiff) {
        lines.push(`      will change: ${formatClosureSummary(h.closureDiff)}`);
        for (const c of h.closureDiff.changes) lines.push(`        ${formatClosureChange(c)}`);
      } else if (h.closureDiffError) lines.push(`      will change: unknown (${h.closureDiffError})`);
    }
  }
  return lines.join('\n');
}

export function exitCodeFor(s: Pick<DeploymentStatus, 'outcome'>): number {
  switch (s.outcome) {
    case 'succeeded':
      return EXIT.ok;
    case 'failed-rolled-back':
      return EXIT.failedRolledBack;
    case 'failed-rollback-incomplete':
    case 'failed-revert-failed':
      return EXIT.failedRollbackIncomplete;
    case 'failed-not-rolled-back':
    case 'failed-dismissed':
      return EXIT.failedNotRolledBack;
    case undefined:
      // Still running (deploy --no-wait, status mid-way): nothing has failed yet.
      return EXIT.ok;
    default:
      // Any other outcome (refused, finished with failures, one this CLI does not know) is not a success.
      return EXIT.error;
  }
}

const SETTLED = ['succeeded', 'awaiting-operator', 'closed'];

/** The live view's summary line: the counts, the wave running now and the host that failed (bounded at any fleet size). */
export function formatSummaryLine(s: StatusSummary): string {
  const running = s.waves && s.waves.length > 1 ? s.waves.find((w) => w.state === 'running' || w.state === 'baking') : undefined;
  return `  hosts: ${s.hosts.total}: ${counts(s.hosts.byState)}${running ? ` · wave ${running.name} ${running.state}` : ''}${s.failedHost ? ` · failed on ${s.failedHost}` : ''}`;
}

/** One page of the live feed without a WebSocket (GET …/progress?view=summary). */
interface SummaryProgressPage {
  cursor: number;
  oldest: number;
  events: Array<{ type: string; seq: number; [k: string]: unknown }>;
  summary: StatusSummary;
}

/**
 * Follows a deployment over the API's WebSocket, printing each host's transitions as they happen, each
 * once and in order (the feed numbers them: `seq`), and the summary line (counts, the running wave, the
 * failed host) whenever it changes, until `stop` says so (or `done` resolves). It follows the feed's
 * `summary` view, so what it receives does not grow with the fleet: the bounded summary in place of the
 * whole status, and the numbered transitions (the running wave's hosts that change before their wave
 * numbers them are counted in the summary, not listed). When the WebSocket cannot be used (a proxy that
 * does not pass upgrades) or drops, it goes on from the same cursor over
 * GET /api/deployments/:id/progress?view=summary, so nothing is lost either way. `since`: print every
 * transition after this cursor (0: from the deployment's start) instead of starting from the current
 * state; `initial` is the state as of it.
 */
async function follow(
  io: Io,
  call: ReturnType<typeof api>,
  id: string,
  opts: { stop?: (s: StatusSummary) => boolean; done?: Promise<unknown>; since?: number; initial?: StatusSummary } = {},
): Promise<StatusSummary | undefined> {
  const base = (io.env.NIXFLEET_API_URL ?? 'http://127.0.0.1:8787').replace(/\/$/, '');
  const token = io.env.NIXFLEET_TOKEN ?? '';
  const hostLine = (name: string, from: string, to: string, extra = ''): void => io.out(`  ${pad(name, 16)} ${pad(from, 14)} → ${pad(to, 14)}${extra}`);
  let last: StatusSummary | undefined = opts.initial;
  /** The summary line last printed: printed again only when it changes. */
  let lastLine: string | undefined = opts.initial ? formatSummaryLine(opts.initial) : undefined;
  const summaryLine = (s: StatusSummary): void => {
    const line = formatSummaryLine(s);
    if (line !== lastLine) io.out(line);
    lastLine = line;
  };
  /** The last transition printed. */
  let cursor: number | undefined = opts.since;
  let requestDone = opts.done === undefined;
  /** With `done`: the cursor its answer's status is at; the feed has caught up once it is there. */
  let target: number | undefined;
  const caughtUp = (): boolean => target === undefined || (cursor !== undefined && cursor >= target);
  const onSummary = (summary: StatusSummary, at: number, reset: boolean): void => {
    const prev = last;
    last = summary;
    if (prev === undefined && opts.since === undefined) io.out(`phase: ${summary.phase}`);
    else if (reset && prev !== undefined) {
      // The feed could not serve our cursor any more: say so; the summary line says where the hosts are now.
      io.out(`(fell behind the live feed: transitions ${(cursor ?? 0) + 1}–${at} summarized)`);
      if (prev.phase !== summary.phase) io.out(`phase: ${summary.phase}`);
    }
    summaryLine(summary);
    if (cursor === undefined || reset || at > cursor) cursor = at;
  };
  const onTransition = (m: { type: string; seq?: unknown; [k: string]: unknown }): void => {
    const seq = Number(m.seq);
    if (cursor !== undefined && seq <= cursor) return;
    cursor = seq;
    if (m.type === 'phase') io.out(`phase: ${String(m.to)}`);
    else hostLine(String(m.host), String(m.from), String(m.to), m.generation !== undefined ? `  generation ${String(m.generation)}` : m.error ? `  ${String(m.error)}` : '');
  };
  const viaWs = new Promise<StatusSummary | undefined>((resolve, reject) => {
    const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/api/ws`, { headers: { authorization: `Bearer ${token}` } });
    let settled = false;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(grace);
      ws.close();
      resolve(last);
    };
    // With `done` (a request running meanwhile): stop once it has answered and the feed has printed
    // every transition up to its answer's state (a feed that stalls is given up after a while).
    let grace: NodeJS.Timeout | undefined;
    const settle = (answer: unknown): void => {
      requestDone = true;
      const c = (answer as { status?: DeploymentStatus } | undefined)?.status?.progressCursor;
      if (typeof c === 'number') target = c;
      if (caughtUp() && (!last || opts.stop?.(last) !== false)) finish();
      else grace = setTimeout(finish, 30_000);
    };
    void opts.done?.then(settle, finish);
    ws.on('error', (err) => (settled ? undefined : reject(err)));
    ws.on('close', (code, reason) => {
      if (!settled) reject(new Error(code === 4401 ? 'the API refused the token' : `live feed closed (${code} ${reason.toString()})`));
    });
    ws.on('message', (data: Buffer) => {
      const m = JSON.parse(data.toString('utf8')) as { type: string; [k: string]: unknown };
      if (m.type === 'ready') ws.send(JSON.stringify({ type: 'subscribe', deploymentId: id, view: 'summary', ...(cursor !== undefined ? { since: cursor } : {}) }));
      else if (m.type === 'summary') {
        onSummary(m.summary as StatusSummary, Number(m.cursor ?? 0), m.reset === true);
        if (requestDone && caughtUp() && last && opts.stop?.(last)) finish();
      } else if (m.type === 'phase' || m.type === 'host') onTransition(m);
      else if (m.type === 'final') finish();
      else if (m.type === 'error') {
        settled = true;
        ws.close();
        reject(new ApiError(Number(m.status ?? 500), String(m.message)));
      }
      // `hosts` (the running wave's hosts, before their wave numbers their transitions): counted in the next summary.
    });
  });
  try {
    return await viaWs;
  } catch (err) {
    if (err instanceof ApiError) throw err;
    io.err(`live feed unavailable (${err instanceof Error ? err.message : String(err)}); polling`);
  }
  // Polling fallback: the same feed over HTTP, from the same cursor, the summary in place of the status.
  let stopped = false;
  void opts.done?.then(
    (answer) => {
      const c = (answer as { status?: DeploymentStatus } | undefined)?.status?.progressCursor;
      if (typeof c === 'number') target = c;
      requestDone = true;
    },
    () => (stopped = true),
  );
  for (;;) {
    const q = new URLSearchParams({ view: 'summary', ...(cursor !== undefined ? { since: String(cursor) } : {}) });
    const page = await call<SummaryProgressPage>('GET', `/api/deployments/${encodeURIComponent(id)}/progress?${q.toString()}`);
    const reset = cursor !== undefined && (cursor < page.oldest - 1 || cursor > page.cursor);
    if (!reset) for (const e of page.events) onTransition(e);
    onSummary(page.summary, page.cursor, reset);
    if (stopped || (requestDone && caughtUp() && opts.stop?.(page.summary) !== false)) return page.summary;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * A deployment's state once, bounded: the whole table while every host fits on one page (as before),
 * else the summary and the first page of hosts (`nixfleet status DEPLOYMENT --page N` for the rest).
 */
async function showState(io: Io, call: ReturnType<typeof api>, id: string): Promise<number> {
  const dep = encodeURIComponent(id);
  const summary = await call<StatusSummary>('GET', `/api/deployments/${dep}/summary`);
  if (summary.hosts.total <= DEFAULT_PAGE_SIZE) {
    const s = await call<DeploymentStatus>('GET', `/api/deployments/${dep}`);
    io.out(formatStatus(s));
    return exitCodeFor(s);
  }
  const hosts = await call<HostPage>('GET', `/api/deployments/${dep}/hosts?page=1&pageSize=${DEFAULT_PAGE_SIZE}`);
  io.out(`${formatSummary(summary)}\n${formatHostPage(hosts)}`);
  return exitCodeFor(summary);
}

/** An action's answer (its status), bounded: the whole table while it fits on one page, else its summary. */
function formatOutcomeStatus(s: DeploymentStatus): string {
  return s.hosts.length <= DEFAULT_PAGE_SIZE ? formatStatus(s) : `${formatSummary(summarize(s))}\n(nixfleet status ${s.deploymentId} --page 1 for the hosts)`;
}

/**
 * What an action (control, dismiss, start-now) prints after it acted, at any fleet size: the bounded
 * summary (as `status` shows it), the operator controls' state, and only the hosts that matter — failed
 * or in flight, the first ACTION_HOSTS (src/domain/host-pages.ts actionHosts) and how many more.
 */
export function formatActionStatus(s: DeploymentStatus): string {
  const summary = summarize(s);
  const lines = [formatSummary(summary)];
  const c = summary.controls;
  if (c?.paused) lines.push(`⏸ paused by ${c.pausedBy ?? 'an operator'}: no further host starts until resumed`);
  if (c?.abortedBy) lines.push(`aborted by ${c.abortedBy}`);
  if (c && c.skippedCount > 0) lines.push(`skipped: ${c.skipped.join(', ')}${c.skippedCount > c.skipped.length ? ` and ${c.skippedCount - c.skipped.length} more` : ''}`);
  const shown = actionHosts(s.hosts);
  if (shown.total > 0) {
    const note = (h: HostStatus): string => (h.uncertain ?? h.error ?? '').slice(0, 200);
    const rows = shown.hosts.map((h) => [h.name, h.kind, h.state, gen(h), note(h)]);
    const header = ['HOST', 'KIND', 'STATE', 'GENERATION', 'NOTE'];
    const widths = header.map((_, i) => Math.max(header[i]!.length, ...rows.map((r) => r[i]!.length)));
    lines.push([header, ...rows].map((r) => r.map((x, i) => pad(x, widths[i]!)).join('  ').trimEnd()).join('\n'));
    if (shown.total > shown.hosts.length) lines.push(`… ${shown.total - shown.hosts.length} more failed or in flight (nixfleet status ${s.deploymentId} --state failed, or --state switching)`);
  }
  lines.push(`(nixfleet status ${s.deploymentId} for every host, a page at a time)`);
  return lines.join('\n');
}

async function waitAndShow(io: Io, call: ReturnType<typeof api>, id: string): Promise<number> {
  // Just started: every transition from the first one.
  await follow(io, call, id, { since: 0, stop: (s) => SETTLED.includes(s.phase) });
  // The settled state, read once more so the table is the API's answer.
  return showState(io, call, id);
}

/** The undo's plan (to confirm) or its outcome. */
export function formatUndo(u: UndoStatus): string {
  const lines = [`undo ${u.undoId} of ${u.deploymentId}: ${u.phase}`];
  if (u.refusal) lines.push(`refused (${u.refusal.code}): ${u.refusal.reason}`);
  const p = u.preview;
  if (p) {
    lines.push(`deployment closed ${p.closedAt ?? '?'} (${p.outcome ?? '?'}); undo possible until ${p.retainedUntil ?? '?'}`);
    lines.push(`merge: ${p.revert.note}`);
    for (const h of p.hosts) {
      const done = u.hosts.find((x) => x.name === h.name);
      lines.push(`  ${pad(h.name, 16)} generation ${h.from.number} → ${h.to.number}${h.forced ? ' (named: changed since)' : ''}${done && done.state !== 'pending' ? `  ${done.state}${done.error ? `: ${done.error}` : ''}` : ''}`);
      if (h.closureDiff) {
        lines.push(`    ${formatClosureSummary(h.closureDiff)}`);
        for (const c of h.closureDiff.changes.slice(0, 20)) lines.push(`    ${formatClosureChange(c)}`);
      } else if (h.closureDiffError) lines.push(`    (closure diff unavailable: ${h.closureDiffError})`);
    }
    for (const s of p.skipped) lines.push(`  ${pad(s.name, 16)} left alone: ${s.detail}`);
  }
  if (u.summary) lines.push(u.summary);
  return lines.join('\n');
}

const OPTIONS = {
  fleet: { type: 'string' },
  pr: { type: 'string' },
  head: { type: 'string' },
  commit: { type: 'string' },
  'no-wait': { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  json: { type: 'boolean' },
  yes: { type: 'boolean', short: 'y' },
  'revert-only': { type: 'boolean' },
  mode: { type: 'string' },
  reason: { type: 'string' },
  from: { type: 'string' },
  repository: { type: 'string' },
  branch: { type: 'string' },
  out: { type: 'string' },
  overwrite: { type: 'boolean' },
  diff: { type: 'boolean' },
  page: { type: 'string' },
  'page-size': { type: 'string' },
  state: { type: 'string' },
  wave: { type: 'string' },
  all: { type: 'boolean' },
  follow: { type: 'boolean', short: 'f' },
  host: { type: 'string', multiple: true },
  'all-waves': { type: 'boolean' },
} as const;

/** parseArgs' refusals (an unknown option, a missing or ambiguous value) are usage errors (64). */
function usageError(command: string | undefined, err: unknown): unknown {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS') ? new InputError(`${command ?? 'nixfleet'}: ${(err as Error).message}`) : err;
}

/** `--pr N`: digits only (`1e3`, `0x10`, `1.5`, ` 42` are refused, not read as numbers), 1 to 2^31-1. */
export function pullRequestArg(text: string): number {
  const n = /^[1-9][0-9]{0,9}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n > 2_147_483_647) throw new InputError(`--pr: a pull request number (digits, 1 or more), got ${JSON.stringify(text)}`);
  return n;
}

export async function run(argv: string[], io: Io): Promise<number> {
  const [command, ...rest] = argv;
  const { values, positionals } = (() => {
    try {
      return parseArgs({ args: rest, allowPositionals: true, options: OPTIONS });
    } catch (err) {
      throw usageError(command, err);
    }
  })();
  const call = api(io);
  const id = positionals[0];
  const needId = (): string => {
    if (!id) throw new InputError(`${command}: DEPLOYMENT is required`);
    return id;
  };
  switch (command) {
    case 'validate': {
      if (!id) throw new InputError('validate: FLEET_FILE is required');
      const fleet = parseFleetFile(readFileSync(id, 'utf8'), id);
      io.out(`${id}: ok, ${fleet.hosts.length} hosts: ${fleet.hosts.map((h) => h.name).join(', ')}`);
      for (const w of notifyWarnings(fleet.notify)) io.err(`${id}: warning: ${w}`);
      return EXIT.ok;
    }
    case 'import': {
      if (values.from !== 'deploy-rs' && values.from !== 'colmena') throw new InputError('import: --from deploy-rs or --from colmena is required');
      if (!id) throw new InputError('import: FLAKE is required');
      const repo = /^([^/\s]+)\/([^/\s]+)$/.exec(values.repository ?? '');
      if (!repo) throw new InputError('import: --repository OWNER/NAME is required (the GitHub repository of the fleet flake)');
      if (values.out && existsSync(values.out) && !values.overwrite) throw new InputError(`import: ${values.out} exists (--overwrite to replace it)`);
      const source: ImportSource = values.from;
      const result = await importFleet(source, id, { repository: { owner: repo[1]!, name: repo[2]!, ...(values.branch ? { branch: values.branch } : {}) } }, nixEval(io.env));
      if (!values.out) {
        io.out(result.yaml.trimEnd());
        return EXIT.ok;
      }
      // Written whole or not at all: a temporary file beside it, then renamed over it.
      const tmp = `${values.out}.nixfleet-import-${process.pid}`;
      writeFileSync(tmp, result.yaml, { mode: 0o644 });
      renameSync(tmp, values.out);
      io.err(`${values.out}: ${result.hosts.length} hosts: ${result.hosts.join(', ')}`);
      return EXIT.ok;
    }
    case 'deploy': {
      if (!values.fleet) throw new InputError('deploy: --fleet is required');
      if (!values.pr === !values.commit) throw new InputError('deploy: give exactly one of --pr or --commit');
      const fleet = parseFleetFile(readFileSync(values.fleet, 'utf8'), values.fleet);
      const change = values.pr
        ? { pullRequest: pullRequestArg(values.pr), ...(values.head ? { expectedHeadSha: values.head } : {}) }
        : { commit: values.commit };
      if (values.diff && !values['dry-run']) throw new InputError('deploy: --diff goes with --dry-run');
      if (values['dry-run']) {
        const plan = await call<DeployPlan>('POST', '/api/deployments/dry-run', { fleet, change, ...(values.diff ? { closureDiff: true } : {}) });
        io.out(values.json ? JSON.stringify(plan, null, 2) : formatPlan(plan));
        return EXIT.ok;
      }
      const started = await call<{ deploymentId: string }>('POST', '/api/deployments', { fleet, change });
      io.out(`started ${started.deploymentId}`);
      if (values['no-wait']) return EXIT.ok;
      return waitAndShow(io, call, started.deploymentId);
    }
    case 'list': {
      const { deployments } = await call<{ deployments: Array<{ deploymentId: string; status: string; phase?: string; outcome?: string; startTime?: string }> }>('GET', '/api/deployments');
      if (deployments.length > 0) io.out(formatList(deployments));
      return EXIT.ok;
    }
    case 'status': {
      const dep = encodeURIComponent(needId());
      const paged = values.page !== undefined || values['page-size'] !== undefined || values.state !== undefined || values.wave !== undefined;
      if (values.all && paged) throw new InputError('status: --all shows every host; leave out --page, --page-size, --state and --wave');
      if (values.follow) {
        if (paged || values.all || values.json) throw new InputError('status: --follow shows the live transitions and the summary; leave out --page, --page-size, --state, --wave, --all and --json');
        // From the current state: its phase and counts, every transition after it, until it settles.
        await follow(io, call, needId(), { stop: (st) => SETTLED.includes(st.phase) });
        return showState(io, call, needId());
      }
      if (values.state !== undefined && !(HOST_STATES as readonly string[]).includes(values.state)) throw new InputError(`--state: one of ${HOST_STATES.join(', ')}; got ${JSON.stringify(values.state)}`);
      const page = intOption('page', values.page, 1, 1_000_000);
      const pageSize = intOption('page-size', values['page-size'], DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
      // Every host: --all, or --json without a page (the whole status, as before).
      const whole = async (): Promise<number> => {
        const s = await call<DeploymentStatus>('GET', `/api/deployments/${dep}`);
        io.out(values.json ? JSON.stringify(s, null, 2) : formatStatus(s));
        return exitCodeFor(s);
      };
      if (values.all || (values.json && !paged)) return whole();
      // At any size: the bounded summary, then one page of hosts. A deployment that fits on one page
      // is shown whole (as before), unless a page or filter was asked for.
      const summary = await call<StatusSummary>('GET', `/api/deployments/${dep}/summary`);
      if (!paged && summary.hosts.total <= pageSize) return whole();
      const q = new URLSearchParams({ page: String(page), pageSize: String(pageSize), ...(values.state ? { state: values.state } : {}), ...(values.wave ? { wave: values.wave } : {}) });
      const hosts = await call<HostPage>('GET', `/api/deployments/${dep}/hosts?${q.toString()}`);
      if (values.json) io.out(JSON.stringify({ summary, page: hosts }, null, 2));
      else io.out(`${formatSummary(summary)}\n${formatHostPage(hosts, { ...(values.state ? { state: values.state } : {}), ...(values.wave ? { wave: values.wave } : {}) })}`);
      return exitCodeFor(summary);
    }
    case 'rollback': {
      const dep = needId();
      if (values.mode && values.mode !== 'commit' && values.mode !== 'pull-request') throw new InputError('--mode: commit or pull-request');
      const revertOnly = values['revert-only'] === true;
      const preview = await call<RollbackPreview>('GET', `/api/deployments/${encodeURIComponent(dep)}/rollback-preview`);
      const action = revertOnly ? 'revert' : 'revert-and-rollback';
      if (!preview.allowed.includes(action)) {
        io.err(`${action} does not apply to ${dep} now (allowed: ${preview.allowed.join(', ') || 'nothing'})`);
        return EXIT.error;
      }
      io.out(formatPreview(preview, revertOnly));
      if (!values.yes && !(await io.confirm('Proceed? [y/N] '))) {
        io.err('cancelled; nothing was changed');
        return EXIT.error;
      }
      // Where the deployment stands before the request: every transition after this cursor is shown.
      // (The summary view: its counts, not every host, at any fleet size.)
      const before = await call<SummaryProgressPage>('GET', `/api/deployments/${encodeURIComponent(dep)}/progress?view=summary`);
      io.out(`phase: ${before.summary.phase}`);
      io.out(formatSummaryLine(before.summary));
      const request = call<{ summary: string; status: DeploymentStatus }>('POST', `/api/deployments/${encodeURIComponent(dep)}/rollback`, {
        action,
        ...(values.mode ? { revertMode: values.mode } : {}),
        ...(values.reason ? { reason: values.reason } : {}),
      });
      // Live progress while the rollback runs; the request's answer is the outcome.
      const watching = follow(io, call, dep, { done: request, since: before.cursor, initial: before.summary, stop: (st) => SETTLED.includes(st.phase) }).catch(() => undefined);
      const outcome = await request;
      await watching;
      io.out(outcome.summary);
      io.out(formatOutcomeStatus(outcome.status));
      return exitCodeFor(outcome.status);
    }
    case 'control': {
      const dep = needId();
      const [control, host] = positionals.slice(1);
      if (control === undefined || !(CONTROLS as readonly string[]).includes(control)) throw new InputError(`control: one of ${CONTROLS.join(', ')}`);
      if ((control === 'skip') !== (host !== undefined)) throw new InputError(control === 'skip' ? 'control skip: name the HOST to skip' : `control ${control}: takes no HOST`);
      const outcome = await call<{ summary: string; status: DeploymentStatus }>('POST', `/api/deployments/${encodeURIComponent(dep)}/control`, {
        control,
        ...(host !== undefined ? { host } : {}),
        ...(values.reason ? { reason: values.reason } : {}),
      });
      io.out(outcome.summary);
      io.out(formatActionStatus(outcome.status));
      return EXIT.ok;
    }
    case 'dismiss': {
      const outcome = await call<{ summary: string; status: DeploymentStatus }>('POST', `/api/deployments/${encodeURIComponent(needId())}/dismiss`, values.reason ? { reason: values.reason } : {});
      io.out(outcome.summary);
      io.out(formatActionStatus(outcome.status));
      // The action succeeded; the deployment's own outcome is for `status`.
      return EXIT.ok;
    }
    case 'undo': {
      // A deployment that succeeded, undone later: the plan (hosts, what it undoes on each, the
      // revert, the hosts left alone), a confirmation, then the outcome.
      const dep = needId();
      if (!values.fleet) throw new InputError('undo: --fleet is required (the hosts\' addresses and the retention period come from it)');
      if (values.mode && values.mode !== 'commit' && values.mode !== 'pull-request') throw new InputError('--mode: commit or pull-request');
      const fleet = parseFleetFile(readFileSync(values.fleet, 'utf8'), values.fleet);
      const started = await call<UndoStatus>('POST', `/api/deployments/${encodeURIComponent(dep)}/undo`, { fleet, hosts: values.host ?? [] });
      if (started.phase !== 'awaiting-confirmation') {
        io.out(values.json ? JSON.stringify(started, null, 2) : formatUndo(started));
        return EXIT.error;
      }
      io.out(formatUndo(started));
      if (!values.yes && !(await io.confirm('Undo? [y/N] '))) {
        await call('POST', `/api/undo/${encodeURIComponent(started.undoId)}/confirm`, { action: 'cancel' });
        io.err('cancelled; nothing was changed');
        return EXIT.error;
      }
      const done = await call<UndoStatus>('POST', `/api/undo/${encodeURIComponent(started.undoId)}/confirm`, { action: 'confirm', ...(values.mode ? { revertMode: values.mode } : {}) });
      io.out(values.json ? JSON.stringify(done, null, 2) : formatUndo(done));
      return done.phase === 'done' && done.hosts.every((h) => h.state === 'rolled-back') && done.revert?.kind !== 'failed' ? EXIT.ok : EXIT.error;
    }
    case 'start-now': {
      // A deployment waiting for its maintenance window starts now (this wait; --all-waves: no later wave waits either).
      const body = { ...(values.reason ? { reason: values.reason } : {}), ...(values['all-waves'] ? { scope: 'deployment' } : {}) };
      const outcome = await call<{ summary: string; status: DeploymentStatus }>('POST', `/api/deployments/${encodeURIComponent(needId())}/start-now`, body);
      io.out(outcome.summary);
      io.out(formatActionStatus(outcome.status));
      return EXIT.ok;
    }
    case 'audit': {
      // Without DEPLOYMENT: the whole log (every deployment), from the API's audit store.
      // Every run of a deployment id (ids are reused once a run closed), run by run; `run -` : an
      // entry written before runs were keyed.
      const { audit } = await call<{ audit: Array<DeploymentStatus['audit'][number] & { deploymentId: string; runId?: string }> }>(
        'GET',
        id ? `/api/deployments/${encodeURIComponent(id)}/audit` : '/api/audit',
      );
      if (values.json) io.out(JSON.stringify(audit, null, 2));
      else for (const a of audit) io.out(`${a.at}  ${id ? '' : `${pad(a.deploymentId, 36)} `}run ${pad(a.runId ?? '-', 36)}  ${pad(a.actor, 22)} ${pad(a.action, 20)} ${a.hosts.join(',') || '-'}  ${a.outcome}${a.reverted ? `  (${a.reverted})` : ''}`);
      return EXIT.ok;
    }
    default:
      io.err(USAGE);
      return command === undefined || command === 'help' || command === '--help' ? EXIT.ok : EXIT.usage;
  }
}

export async function cliMain(argv: string[]): Promise<number> {
  const io: Io = {
    out: (s) => process.stdout.write(`${s}\n`),
    err: (s) => process.stderr.write(`${s}\n`),
    env: process.env,
    confirm: async (q) => {
      if (!process.stdin.isTTY) return false;
      const rl = createInterface({ input: process.stdin, output: process.stdout });
      try {
        return /^y(es)?$/i.test((await rl.question(q)).trim());
      } finally {
        rl.close();
      }
    },
  };
  try {
    return await run(argv, io);
  } catch (err) {
    if (err instanceof InputError) {
      io.err(err.message);
      return EXIT.usage;
    }
    if (err instanceof ApiError) {
      io.err(`error (${err.status}): ${err.message}`);
      return EXIT.error;
    }
    io.err(err instanceof Error ? err.message : String(err));
    return EXIT.error;
  }
}

if (require.main === module) {
  void cliMain(process.argv.slice(2)).then((code) => process.exit(code));
}
