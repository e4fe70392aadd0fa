import type { AuditEntry } from '../domain/deployment';


/** One audit entry as stored: the workflow's entry plus where it belongs. */
export interface AuditRecord extends AuditEntry {
  deploymentId: string;
  /**
   * The workflow run the entry belongs to: deployment ids are reused once a run has closed, so an
   * entry is keyed by (deploymentId, runId, seq). Absent in entries written before runs were keyed
   * (and by workflow histories that predate it): those keep the old key (deploymentId, seq).
   */
  runId?: string;
  /** Position of the entry in the deployment's trail (1-based): with deploymentId, the idempotency key. */
  seq: number;
  /** `owner/name` */
  repository: string;
}

/**
 * The audit log that outlives Temporal's retention: append-only, written by the worker's
 * `recordAudit` activity. `append` must be idempotent on (deploymentId, seq): a retried activity
 * never duplicates an entry.
 */
export interface AuditStore {
  append(record: AuditRecord): Promise<void>;
  list(filter?: { deploymentId?: string; limit?: number }): Promise<AuditRecord[]>;
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
