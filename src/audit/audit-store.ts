/**
 * The audit log that outlives Temporal's retention: one interface, one adapter per backend (SQLite,
 * the embedded default: sqlite-audit-store.ts; PostgreSQL: postgres-audit-store.ts), chosen by a
 * connection URL (open-audit-store.ts). Every backend keeps the same contract, checked by the same
 * tests (tests/audit/audit-store.contract.test.ts):
 * - append-only: entries are only ever inserted; the database itself refuses UPDATE and DELETE;
 * - idempotent: an entry is keyed by (deploymentId, runId, seq); writing it again (a retried
 *   `recordAudit` activity) changes nothing, the first write stands;
 * - an entry out of bounds is refused with `AuditRecordRefusedError` (retrying cannot help: the
 *   activity makes it a non-retryable `AuditRefused` failure), and nothing is written;
 * - ordered: a deployment's entries run by run (in the order the runs began), by seq within a run;
 *   the whole log by time.
 * Beside the entries, each closed deployment's results (`DeploymentResults`: every host's generation
 * before and after, the merge sha), written once at close, under the same rules: append-only,
 * idempotent on (deploymentId, runId), refused when out of bounds. An undo days later reads them
 * there (src/domain/undo.ts), after Temporal's retention has dropped the deployment's history.
 */
import { z } from 'zod';
import { AUDIT_ACTIONS, AUDIT_LIMITS } from '../domain/audit';
import type { AuditEntry } from '../domain/deployment';
import type { DeploymentResults } from '../domain/undo';

/** One audit entry as stored: the workflow's entry plus where it belongs. */
export interface AuditRecord extends AuditEntry {
  deploymentId: string;
  /**
   * The workflow run the entry belongs to: deployment ids are reused once a run has closed, so an
   * entry is keyed by (deploymentId, runId, seq). Absent in entries written before runs were keyed
   * (and by workflow histories that predate it): those keep the old key (deploymentId, seq).
   */
  runId?: string;
  /** Position of the entry in the run's trail (1-based). */
  seq: number;
  /** `owner/name` */
  repository: string;
}

export interface AuditListFilter {
  deploymentId?: string;
  /** At most this many entries (default 1000, at most 10,000): a deployment's first ones, the log's newest ones. */
  limit?: number;
}

export interface AuditStore {
  /** Where the log is, for the logs (a file, or a URL without its password). */
  readonly location: string;
  append(record: AuditRecord): Promise<void>;
  /**
   * With `deploymentId`: that deployment's entries, run by run in the order the runs began (entries
   * without a run first), by seq within a run. Without: the newest entries of the whole log, oldest first.
   */
  list(filter?: AuditListFilter): Promise<AuditRecord[]>;
  /** Writes a closed deployment's results; a second write for the same (deploymentId, runId) changes nothing. */
  appendResults(results: DeploymentResults): Promise<void>;
  /** A deployment's results, run by run in the order they were written (the latest last). */
  results(deploymentId: string): Promise<DeploymentResults[]>;
  close(): Promise<void>;
}

/**
 * The store refused a record (a field out of its bounds): retrying cannot help, so `recordAudit`
 * turns it into a non-retryable `AuditRefused` failure that the workflow reports.
 */
export class AuditRecordRefusedError extends Error {
  constructor(readonly issues: string) {
    super(`audit record refused: ${issues}`);
    this.name = 'AuditRecordRefusedError';
  }
}

/** How a record without a run is stored (the key's column is NOT NULL in every backend). */
export const NO_RUN = '';

export const LIST_LIMITS = { default: 1000, max: 10_000 } as const;
export const listLimit = (filter: AuditListFilter): number => Math.max(1, Math.min(Math.trunc(filter.limit ?? LIST_LIMITS.default), LIST_LIMITS.max));

/**
 * Text every backend stores as it is: well-formed Unicode (a lone surrogate has no UTF-8 form) without
 * NUL (PostgreSQL's text refuses it). `storableAuditEntry` makes every entry so before it is written.
 */
const storable = (max: number, min = 0) =>
  z
    .string()
    .min(min)
    .max(max)
    .refine((s) => !s.includes('\0'), 'no NUL characters')
    .refine((s) => !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s), 'not well-formed Unicode (a lone surrogate)');

/** What every store takes: the limits the workflow bounds every entry to (src/domain/audit.ts). */
export const AuditRecordInput = z.object({
  deploymentId: storable(AUDIT_LIMITS.deploymentId, 1),
  runId: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/, 'a workflow run id: letters, digits, ".", "_", ":", "-"')
    .max(AUDIT_LIMITS.runId)
    .optional(),
  seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  repository: storable(AUDIT_LIMITS.repository, 1),
  at: storable(AUDIT_LIMITS.at, 1),
  actor: storable(AUDIT_LIMITS.actor, 1),
  action: z.enum(AUDIT_ACTIONS),
  reverted: storable(AUDIT_LIMITS.reverted).optional(),
  hosts: z.array(storable(AUDIT_LIMITS.hostName)),
  outcome: storable(AUDIT_LIMITS.outcome),
});

/** The record as a store writes it, or `AuditRecordRefusedError` naming every field out of bounds. */
export function validAuditRecord(record: AuditRecord): z.infer<typeof AuditRecordInput> {
  const r = AuditRecordInput.safeParse(record);
  if (!r.success) throw new AuditRecordRefusedError(r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
  return r.data;
}

/** A stored row, whatever the backend: a corrupted row is an error, not a silent gap. */
export const AuditRow = z.object({
  deployment_id: z.string(),
  run_id: z.string(),
  seq: z.coerce.number().int(),
  repository: z.string(),
  at: z.string(),
  actor: z.string(),
  action: z.enum(AUDIT_ACTIONS),
  reverted: z.string().nullable(),
  hosts: z.string().transform((s, ctx) => {
    try {
      return z.array(z.string()).parse(JSON.parse(s));
    } catch {
      ctx.addIssue({ code: 'custom', message: 'hosts: not a JSON array of host names' });
      return z.NEVER;
    }
  }),
  outcome: z.string(),
});

export function recordOfRow(raw: unknown): AuditRecord {
  const row = AuditRow.parse(raw);
  return {
    deploymentId: row.deployment_id,
    ...(row.run_id !== NO_RUN ? { runId: row.run_id } : {}),
    seq: row.seq,
    repository: row.repository,
    at: row.at,
    actor: row.actor,
    action: row.action,
    ...(row.reverted !== null ? { reverted: row.reverted } : {}),
    hosts: row.hosts,
    outcome: row.outcome,
  };
}

const generation = z.strictObject({ number: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER), storePath: storable(AUDIT_LIMITS.storePath, 1) });
const runIdText = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/, 'a workflow run id: letters, digits, ".", "_", ":", "-"')
  .max(AUDIT_LIMITS.runId);

/** A deployment's results as every store takes them (and reads them back: a corrupted row is an error). */
export const DeploymentResultsInput = z.strictObject({
  deploymentId: storable(AUDIT_LIMITS.deploymentId, 1),
  runId: runIdText,
  repository: storable(AUDIT_LIMITS.repository, 1),
  branch: storable(AUDIT_LIMITS.repository, 1),
  closedAt: storable(AUDIT_LIMITS.at, 1).refine((s) => !Number.isNaN(Date.parse(s)), 'an ISO time'),
  outcome: z.enum(['succeeded', 'succeeded-with-failures', 'refused', 'failed-rolled-back', 'failed-rollback-incomplete', 'failed-revert-failed', 'failed-not-rolled-back', 'failed-dismissed']),
  mergeSha: z.string().regex(/^[0-9a-f]{40}$/, 'a 40-character commit sha').optional(),
  ownMerge: z.boolean(),
  pullRequest: z.number().int().positive().max(2_147_483_647).optional(),
  hosts: z
    .array(
      z.strictObject({
        name: storable(AUDIT_LIMITS.hostName, 1),
        kind: z.enum(['nixos', 'home-manager']),
        state: z.enum(['pending', 'switching', 'switched', 'failed', 'not-attempted', 'held', 'rolling-back', 'rolled-back', 'rollback-failed']),
        before: generation.optional(),
        after: generation.optional(),
      }),
    )
    .max(AUDIT_LIMITS.resultsHosts),
});

/** The results as a store writes them, or `AuditRecordRefusedError` naming every field out of bounds. */
export function validResults(results: DeploymentResults): DeploymentResults {
  const r = DeploymentResultsInput.safeParse(results);
  if (!r.success) throw new AuditRecordRefusedError(r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
  return r.data;
}

/** A stored results body (JSON text), checked as it is read. */
export function resultsOfBody(body: string): DeploymentResults {
  return DeploymentResultsInput.parse(JSON.parse(body));
}
