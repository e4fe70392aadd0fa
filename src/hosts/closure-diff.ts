/**
 * What a switch will change on a host: `nix store diff-closures FROM TO` on the host (packages added,
 * removed, version changes, per-package size changes of 8 KiB or more, as Nix reports them) and
 * `nix path-info --json -S FROM TO` (each closure's total size). Both store paths are validated and
 * single-quoted; deploy/nixfleet-allowlist.sh admits exactly these two command lines.
 * A read: it changes nothing on the host.
 */
export type { ClosureChange, ClosureDiff };
import type { ClosureChange, ClosureDiff } from '../domain/closure-diff';
import type { HostSession } from './session';
import { UnexpectedOutputError } from './errors';
import { shellQuote, validateStorePath } from './shell';

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;
const SIZE = /^([+-]\d+(?:\.\d+)?) KiB$/;

function versions(s: string): string[] {
  const t = s.trim();
  if (t === '∅') return [];
  return t.split(', ').map((v) => (v === 'ε' ? '' : v));
}

/**
 * `nix store diff-closures` output → changes. Lines are `name: FROM → TO[, ±N.N KiB]` or
 * `name: ±N.N KiB` (Nix colours the size with ANSI codes even without a terminal: stripped here).
 * A line that fits neither is an error, not a silently shorter list.
 */
export function parseDiffClosures(label: string, stdout: string): ClosureChange[] {
  const out: ClosureChange[] = [];
  for (const raw of stdout.replace(ANSI, '').split('\n')) {
    const line = raw.trimEnd();
    if (!line.trim()) continue;
    const colon = line.indexOf(': ');
    if (colon <= 0) throw new UnexpectedOutputError(label, 'nix store diff-closures line', line);
    const name = line.slice(0, colon).trim();
    let rest = line.slice(colon + 2);
    let sizeDeltaBytes: number | undefined;
    const lastComma = rest.lastIndexOf(', ');
    const sizePart = SIZE.exec(lastComma >= 0 ? rest.slice(lastComma + 2) : rest);
    if (sizePart) {
      sizeDeltaBytes = Math.round(Number(sizePart[1]) * 1024);
      rest = lastComma >= 0 ? rest.slice(0, lastComma) : '';
    }
    if (!rest) {
      if (sizeDeltaBytes === undefined) throw new UnexpectedOutputError(label, 'nix store diff-closures line', line);
      out.push({ name, from: [], to: [], kind: 'size', sizeDeltaBytes });
      continue;
    }
    const arrow = rest.split(' → ');
    if (arrow.length !== 2) throw new UnexpectedOutputError(label, 'nix store diff-closures line', line);
    const from = versions(arrow[0]!);
    const to = versions(arrow[1]!);
    const kind = from.length === 0 ? 'added' : to.length === 0 ? 'removed' : 'upgraded';
    out.push({ name, from, to, kind, ...(sizeDeltaBytes !== undefined ? { sizeDeltaBytes } : {}) });
  }
  return out;
}

export function diffClosuresCommand(from: string, to: string): string {
  return `nix store diff-closures ${shellQuote(validateStorePath(from, 'from'))} ${shellQuote(validateStorePath(to, 'to'))}`;
}
export function closureSizeCommand(from: string, to: string): string {
  return `nix path-info --json -S ${shellQuote(validateStorePath(from, 'from'))} ${shellQuote(validateStorePath(to, 'to'))}`;
}

function closureSizes(label: string, stdout: string, from: string, to: string): { from: number; to: number } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    throw new UnexpectedOutputError(label, 'nix path-info --json', stdout);
  }
  // Nix 2.8-2.18: an array of {path, closureSize}; newer: an object keyed by path.
  const entries: Array<[string, unknown]> = Array.isArray(parsed)
    ? parsed.map((e) => [String((e as { path?: unknown }).path), (e as { closureSize?: unknown }).closureSize])
    : typeof parsed === 'object' && parsed !== null
      ? Object.entries(parsed).map(([p, e]) => [p, (e as { closureSize?: unknown } | null)?.closureSize])
      : [];
  const size = (p: string): number => {
    const v = entries.find(([k]) => k === p)?.[1];
    if (typeof v !== 'number') throw new UnexpectedOutputError(label, `nix path-info closure size of ${p}`, stdout);
    return v;
  };
  return { from: size(from), to: size(to) };
}

/** The closure difference between two store paths that are both on the host. */
export async function diffClosures(session: HostSession, from: string, to: string, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<ClosureDiff> {
  const exec = { timeoutMs: opts.timeoutMs ?? 120_000, ...(opts.signal ? { signal: opts.signal } : {}) };
  const d = await session.run(diffClosuresCommand(from, to), exec);
  const changes = parseDiffClosures(session.label, d.stdout);
  const sizes = closureSizes(session.label, (await session.run(closureSizeCommand(from, to), exec)).stdout, from, to);
  return {
    from,
    to,
    changes,
    added: changes.filter((c) => c.kind === 'added').length,
    removed: changes.filter((c) => c.kind === 'removed').length,
    upgraded: changes.filter((c) => c.kind === 'upgraded').length,
    fromClosureBytes: sizes.from,
    toClosureBytes: sizes.to,
    sizeDeltaBytes: sizes.to - sizes.from,
  };
}
