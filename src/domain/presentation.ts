/**
 * How a deployment is shown: the CLI's table, the dashboard (src/dashboard/public/app.js draws the same
 * rules; tests/dashboard checks it against these functions) and Temporal Web's summary and details.
 * Pure: this module is safe in workflow code.
 */
import type { DeployInput, DeploymentOutcome, DeploymentStatus, HostStatus } from './deployment';

/**
 * Where a host has been and where it is now, generation numbers in order: `42` (untouched), `42 → 43`
 * (switched, or failed on the new generation), `42 → 43 → 42` (rolled back), `42 → 43 → ?` (the
 * rollback failed: where it is cannot be told), `42 → …` while switching. `now` (where a rollback
 * landed) wins over the recorded generation: a rollback to a collected link makes a new number.
 */
export function generationTrail(h: Pick<HostStatus, 'state' | 'before' | 'after'> & { now?: { number: number } }): string {
  const b = h.before ? String(h.before.number) : '–';
  const a = h.after ? String(h.after.number) : undefined;
  const moved = a !== undefined && h.after?.number !== h.before?.number;
  switch (h.state) {
    case 'switching':
      return `${b} → …`;
    case 'switched':
      return `${b} → ${a ?? '?'}`;
    case 'failed':
      return moved ? `${b} → ${a}` : b;
    case 'rolling-back':
      return moved ? `${b} → ${a} → …` : `${b} → …`;
    case 'rolled-back': {
      const now = h.now ? String(h.now.number) : b;
      return moved ? `${b} → ${a} → ${now}` : now === b ? b : `${b} → ${now}`;
    }
    case 'rollback-failed':
      return moved ? `${b} → ${a} → ?` : `${b} → ?`;
    default:
      return b;
  }
}

/** The colour family of an outcome: a failed one is never `ok` (green), whatever was undone. */
export type Tone = 'ok' | 'warn' | 'bad' | 'neutral';
export function outcomeTone(outcome: DeploymentOutcome | string | undefined): Tone {
  if (outcome === undefined) return 'neutral';
  if (outcome === 'succeeded') return 'ok';
  // Failed but fully undone, or finished with failures within the budget: needs a look, not alarm.
  if (outcome === 'failed-rolled-back' || outcome === 'succeeded-with-failures') return 'warn';
  if (outcome.startsWith('failed')) return 'bad';
  return 'neutral';
}

const short = (sha: string | undefined): string => (sha ? sha.slice(0, 12) : '?');
const list = (names: string[], max: number): string => (names.length <= max ? names.join(', ') : `${names.slice(0, max).join(', ')} … and ${names.length - max} more`);
const seconds = (s: number): string => (s % 3600 === 0 ? `${s / 3600}h` : s % 60 === 0 ? `${s / 60}m` : `${s}s`);

/**
 * Temporal Web's static summary and details for a deployment, set where it is started. The summary
 * is one line: `acme/nixos-fleet@main · PR #42 · 5 hosts`; the details (markdown) list the waves,
 * held hosts, the failure policy and who asked, each list capped so a large fleet stays small.
 */
export function deploymentSummary(input: DeployInput): { summary: string; details: string } {
  const repo = `${input.repository.owner}/${input.repository.name}@${input.repository.branch}`;
  const change =
    input.change.kind === 'pull-request'
      ? `PR #${input.change.number}${input.change.expectedHeadSha ? ` (head ${short(input.change.expectedHeadSha)})` : ''}`
      : `commit ${short(input.change.sha)}${input.change.pullRequest ? ` (PR #${input.change.pullRequest})` : ''}`;
  const held = input.rollout?.held ?? [];
  const deployed = input.hosts.length - held.length;
  const summary = `flake.lock update ${repo} · ${change} · ${deployed} host${deployed === 1 ? '' : 's'}${held.length ? ` (${held.length} held)` : ''}`;
  const waves = input.rollout?.waves ?? [{ name: 'all', hosts: input.hosts.map((h) => h.name), maxParallel: 1, bakeSeconds: 0 }];
  const r = input.rollout;
  const details = [
    `**${repo}**: ${change}, requested by ${input.requestedBy}`,
    '',
    `Waves (${waves.length}):`,
    ...waves.slice(0, 20).map((w) => `- ${w.name}: ${list(w.hosts, 30)}${w.maxParallel > 1 ? ` · ${w.maxParallel} at a time` : ''}${w.bakeSeconds ? ` · bake ${seconds(w.bakeSeconds)}` : ''}`),
    ...(waves.length > 20 ? [`- … and ${waves.length - 20} more waves`] : []),
    ...(held.length ? ['', `Held back: ${list(held, 30)}`] : []),
    '',
    `On failure: revert ${input.onFailure.revert}, roll back hosts ${input.onFailure.rollbackHosts ? 'yes' : 'no'}; failure budget ${r?.failureBudget ?? 0}${r?.buildFirst ? '; build first' : ''}; manual window ${seconds(input.manualWindowSeconds)}`,
  ].join('\n');
  return { summary, details };
}

/**
 * The deployment's current details for Temporal Web (`setCurrentDetails` in the workflow), one short
 * paragraph of where it stands: `deploying · wave canary · 3/12 switched, 1 failed · halted at hsb1`.
 */
export function deploymentCurrentDetails(s: DeploymentStatus): string {
  const count = (st: string): number => s.hosts.filter((h) => h.state === st).length;
  const parts = [s.outcome ? `${s.phase} · ${s.outcome}` : s.phase];
  const running = s.waves?.find((w) => w.state === 'running' || w.state === 'baking');
  if (running) parts.push(`wave ${running.name}${running.state === 'baking' ? ' (baking)' : ''}`);
  const counts = [
    `${count('switched')}/${s.hosts.filter((h) => h.state !== 'held').length} switched`,
    ...(['failed', 'rolled-back', 'rollback-failed', 'not-attempted'] as const).filter((st) => count(st) > 0).map((st) => `${count(st)} ${st}`),
  ];
  parts.push(counts.join(', '));
  if (s.failedHost) parts.push(`halted at ${s.failedHost}`);
  if (s.mergeSha) parts.push(`merge ${short(s.mergeSha)}`);
  if (s.window?.waiting) parts.push(`${s.window.for} waits for its maintenance window: opens ${s.window.opensAt} (${s.window.windows}); start it now with the start-now update or signal`);
  return parts.join(' · ');
}
