import type { DeploymentResults } from '../domain/undo';
import { listLimit, NO_RUN, validAuditRecord, validResults, type AuditListFilter, type AuditRecord, type AuditStore } from './audit-store';

/** An AuditStore in memory: for tests and for a worker run without a database. Same contract as the others. */
export class MemoryAuditStore implements AuditStore {
  readonly location = 'memory';
  private readonly records = new Map<string, AuditRecord>();
  /** How many appends arrived, duplicates included (tests count retries with it). */
  appends = 0;

  async append(record: AuditRecord): Promise<void> {
    this.appends += 1;
    const v: AuditRecord = validAuditRecord(record);
    const key = JSON.stringify([v.deploymentId, v.runId ?? NO_RUN, v.seq]);
    if (!this.records.has(key)) this.records.set(key, structuredClone(v));
  }

  async list(filter: AuditListFilter = {}): Promise<AuditRecord[]> {
    const all = [...this.records.values()];
    const limit = listLimit(filter);
    if (filter.deploymentId !== undefined) {
      const mine = all.filter((r) => r.deploymentId === filter.deploymentId);
      // Insertion order is the Map's: a run's place is where its first entry went in.
      const first = new Map<string, number>();
      mine.forEach((r, i) => first.has(r.runId ?? NO_RUN) || first.set(r.runId ?? NO_RUN, i));
      const place = (r: AuditRecord) => first.get(r.runId ?? NO_RUN) as number;
      return mine.sort((a, b) => place(a) - place(b) || a.seq - b.seq).slice(0, limit).map((r) => structuredClone(r));
    }
    const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
    return all
      .sort((a, b) => cmp(a.at, b.at) || cmp(a.deploymentId, b.deploymentId) || cmp(a.runId ?? NO_RUN, b.runId ?? NO_RUN) || a.seq - b.seq)
      .slice(-limit)
      .map((r) => structuredClone(r));
  }

  private readonly deploymentResults = new Map<string, DeploymentResults>();

  async appendResults(results: DeploymentResults): Promise<void> {
    const v = validResults(results);
    const key = JSON.stringify([v.deploymentId, v.runId]);
    if (!this.deploymentResults.has(key)) this.deploymentResults.set(key, structuredClone(v));
  }

  async results(deploymentId: string): Promise<DeploymentResults[]> {
    return [...this.deploymentResults.values()].filter((r) => r.deploymentId === deploymentId).map((r) => structuredClone(r));
  }

  async close(): Promise<void> {}
}
