import type { AuditRecord, AuditStore } from './audit-store';

/** An AuditStore in memory: for tests and for a worker run without a database. */
export class MemoryAuditStore implements AuditStore {
  private readonly records = new Map<string, AuditRecord>();
  /** How many appends arrived, duplicates included (tests count retries with it). */
  appends = 0;

  async append(record: AuditRecord): Promise<void> {
    this.appends += 1;
    const key = `${record.deploymentId}#${record.seq}`;
    if (!this.records.has(key)) this.records.set(key, { ...record });
  }

  async list(filter: { deploymentId?: string; limit?: number } = {}): Promise<AuditRecord[]> {
    return [...this.records.values()]
      .filter((r) => filter.deploymentId === undefined || r.deploymentId === filter.deploymentId)
      .sort((a, b) => a.at.localeCompare(b.at) || a.seq - b.seq)
      .slice(0, filter.limit ?? Number.MAX_SAFE_INTEGER);
  }

  async close(): Promise<void> {}
}
