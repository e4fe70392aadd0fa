/**
 * What a switch will change on a host: the closure difference between the generation it runs and the
 * target (`nix store diff-closures` on the host). Pure types: safe in workflow code.
 */
import type { Generation, HostSpec } from './deployment';

export interface ClosureChange {
  /** The package name as Nix splits it from the store path (`firefox`, `nixos-system-gpc0`). */
  name: string;
  /** Versions before and after; [] = not in that closure; "" = a path without a version (Nix's ε). */
  from: string[];
  to: string[];
  kind: 'added' | 'removed' | 'upgraded' | 'size';
  /** The package's size change in bytes, when Nix shows it (|Δ| ≥ 8 KiB), to 0.1 KiB. */
  sizeDeltaBytes?: number;
}

export interface ClosureDiff {
  from: string;
  to: string;
  changes: ClosureChange[];
  added: number;
  removed: number;
  upgraded: number;
  /** Closure sizes in bytes (nix path-info -S), and the difference. */
  fromClosureBytes: number;
  toClosureBytes: number;
  sizeDeltaBytes: number;
}

export interface ClosureDiffInput {
  deploymentId: string;
  host: HostSpec;
  /** The flake reference pinned at the commit to compare with, `…#attr` optional (the host's attr is used). */
  flakeRef: string;
  /** The generation the host runs now. */
  from: Generation;
}

export interface ClosureDiffActivities {
  /** Builds the host's target (no profile change) and diffs its closure against `from`. A read. */
  closureDiff(input: ClosureDiffInput): Promise<ClosureDiff>;
  /** The closure difference between two store paths already on the host (no build). A read. */
  diffStorePaths(input: { deploymentId: string; host: HostSpec; from: string; to: string }): Promise<ClosureDiff>;
  /** A pull request's head commit and branch (what a dry run builds before the merge exists). */
  pullRequestHead(input: { repository: { owner: string; name: string }; number: number }): Promise<{ sha: string; ref: string }>;
}

/**
 * The flake reference (its template already pinned to the base branch: `…?ref=main&rev={sha}`) for a
 * commit on another branch: a `git+` reference's `ref=` names that branch, or Nix looks for the
 * commit on the base branch and fails (`Cannot find Git revision … in ref 'main'`). Other references
 * (`github:o/r/{sha}`) fetch any commit by its sha and stay as they are.
 */
export function flakeRefOnBranch(pinnedTemplate: string, branch: string): string {
  if (!pinnedTemplate.startsWith('git+')) return pinnedTemplate;
  const q = pinnedTemplate.indexOf('?');
  if (q < 0) return pinnedTemplate;
  const ref = encodeURIComponent(branch).replace(/%2F/g, '/');
  const params = pinnedTemplate.slice(q + 1).split('&').map((p) => (p.startsWith('ref=') ? `ref=${ref}` : p));
  return `${pinnedTemplate.slice(0, q + 1)}${params.join('&')}`;
}

const KIB = 1024;
/** `+1.2 MiB`, `-340.0 KiB`, `0 B`. */
export function formatBytes(n: number): string {
  const sign = n > 0 ? '+' : n < 0 ? '-' : '';
  const a = Math.abs(n);
  if (a < KIB) return `${sign}${a} B`;
  if (a < KIB * KIB) return `${sign}${(a / KIB).toFixed(1)} KiB`;
  if (a < KIB * KIB * KIB) return `${sign}${(a / KIB / KIB).toFixed(1)} MiB`;
  return `${sign}${(a / KIB / KIB / KIB).toFixed(2)} GiB`;
}

/** One line per change: `+ zlib 1.3`, `- curl 8.0`, `~ hello 2.10 → 2.12 (+9.5 KiB)`. */
export function formatClosureChange(c: ClosureChange): string {
  const v = (xs: string[]): string => xs.map((x) => x || 'ε').join(', ');
  const size = c.sizeDeltaBytes !== undefined ? ` (${formatBytes(c.sizeDeltaBytes)})` : '';
  if (c.kind === 'added') return `+ ${c.name} ${v(c.to)}${size}`.replace(/ +\(/, ' (');
  if (c.kind === 'removed') return `- ${c.name} ${v(c.from)}${size}`.replace(/ +\(/, ' (');
  if (c.kind === 'size') return `~ ${c.name}${size}`;
  return `~ ${c.name} ${v(c.from)} → ${v(c.to)}${size}`;
}

/** `3 added, 1 removed, 2 upgraded; closure +1.2 MiB`. */
export function formatClosureSummary(d: ClosureDiff): string {
  return `${d.added} added, ${d.removed} removed, ${d.upgraded} upgraded; closure ${formatBytes(d.sizeDeltaBytes)}`;
}
