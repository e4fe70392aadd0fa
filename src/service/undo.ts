import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { z } from 'zod';
import type { AuditStore } from '../audit/audit-store';
import { undoWorkflowId, type UndoConfirmation, type UndoInput, type UndoStatus } from '../domain/undo';
import { FleetFile, hostsOf, InputError, parseFleetFile, parseWith, undoSettings } from '../schemas/fleet.schema';
import { confirmUndoUpdate, undoStatusQuery, undoWorkflow } from '../../workflows/undo';
import { ConflictError, NotFoundError } from './deployments';

const ENDED = new Set(['refused', 'cancelled', 'expired', 'done']);
const hostName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'a host name');
export const UndoBody = z.strictObject({
  /** The fleet file as JSON; or `fleetText`, its text (YAML or JSON, as the dashboard reads a file); or neither: the API's own. */
  fleet: z.unknown().optional(),
  fleetText: z.string().max(1_000_000).optional(),
  /** Hosts to undo even though they changed since the deployment. */
  hosts: z.array(hostName).max(10_000).default([]),
});
export const ConfirmBody = z.strictObject({
  action: z.enum(['confirm', 'cancel']).default('confirm'),
  revertMode: z.enum(['commit', 'pull-request']).optional(),
});

/**
 * Undo a deployment that succeeded (src/domain/undo.ts, workflows/undo.ts): shared by the API and the
 * CLI (through the API). The undo's id is derived from the deployment's run (undoWorkflowId), so a
 * request sent twice while the first runs finds the first.
 */
export class UndoService {
  constructor(
    private readonly client: Client,
    private readonly taskQueue: string,
    private readonly audit: AuditStore,
    /** The fleet files the API knows (NIXFLEET_FLEETS): used when a request sends none (the dashboard). */
    private readonly knownFleets: readonly FleetFile[] = [],
  ) {}

  /** The request's fleet file, or the API's own for the deployment's repository and branch. */
  private fleetFor(b: z.output<typeof UndoBody>, repository: string, branch: string): FleetFile {
    if (b.fleet !== undefined && b.fleetText !== undefined) throw new InputError('fleet, fleetText: one or the other');
    if (b.fleet !== undefined) return parseWith(FleetFile, b.fleet, 'fleet');
    if (b.fleetText !== undefined) return parseFleetFile(b.fleetText, 'fleetText');
    const known = this.knownFleets.find((f) => `${f.repository.owner}/${f.repository.name}` === repository && f.repository.branch === branch);
    if (!known) throw new InputError(`fleet: required: the API knows no fleet file of ${repository}@${branch} (NIXFLEET_FLEETS); send it (fleet, or its text as fleetText)`);
    return known;
  }

  /** Starts the undo (or finds it running) and returns its state once it has a plan or a refusal. */
  async start(deploymentId: string, body: unknown, requestedBy: string): Promise<UndoStatus> {
    const b = parseWith(UndoBody, body);
    const results = (await this.audit.results(deploymentId)).at(-1);
    if (!results) throw new NotFoundError(`no results of deployment ${deploymentId} in the audit store (${this.audit.location}): it did not close, closed before results were recorded, or ran without an audit store`);
    const fleet = this.fleetFor(b, results.repository, results.branch);
    const settings = undoSettings(fleet);
    const undoId = undoWorkflowId(deploymentId, results.runId);
    const input: UndoInput = {
      undoId,
      deploymentId,
      runId: results.runId,
      repository: { owner: fleet.repository.owner, name: fleet.repository.name, branch: fleet.repository.branch, ...(fleet.repository.mergeMethod ? { mergeMethod: fleet.repository.mergeMethod } : {}) },
      hosts: hostsOf(fleet),
      retentionDays: settings.retentionDays,
      forceHosts: b.hosts,
      revertMode: fleet.onFailure.revert === 'off' ? 'commit' : fleet.onFailure.revert,
      requestedBy,
      confirmWindowSeconds: settings.confirmWindowSeconds,
    };
    for (let attempt = 0; ; attempt++) {
      try {
        await this.client.workflow.start(undoWorkflow, { taskQueue: this.taskQueue, workflowId: undoId, args: [input], staticSummary: `undo ${deploymentId}` });
        return await this.settled(undoId);
      } catch (err) {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
        // The same request while the first runs: that one. One that has ended (refused, cancelled,
        // expired, done) and is only finishing its audit writes: a new request once it has closed.
        const running = await this.status(undoId);
        if (!ENDED.has(running.phase) || attempt > 0) return running;
        await this.client.workflow.getHandle(undoId).result();
      }
    }
  }

  /** The undo's state, once it has left `reading` (a few host reads), within a minute. */
  private async settled(undoId: string): Promise<UndoStatus> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const s = await this.status(undoId);
      if (s.phase !== 'reading' || Date.now() > deadline) return s;
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async status(undoId: string): Promise<UndoStatus> {
    const handle = this.client.workflow.getHandle<typeof undoWorkflow>(undoId);
    try {
      const d = await handle.describe();
      if (d.status.name === 'COMPLETED') return await handle.result();
      return await handle.query(undoStatusQuery);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw new NotFoundError(`no undo ${undoId}`);
      throw err;
    }
  }

  /** Confirms (or cancels) the undo through its update; returns its state once carried out. */
  async confirm(undoId: string, body: unknown, requestedBy: string): Promise<UndoStatus> {
    const b = parseWith(ConfirmBody, body);
    const request: UndoConfirmation = { action: b.action, requestedBy, ...(b.revertMode ? { revertMode: b.revertMode } : {}) };
    try {
      return await this.client.workflow.getHandle(undoId).executeUpdate(confirmUndoUpdate, { args: [request] });
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw new NotFoundError(`no undo ${undoId} waiting (unknown, or closed)`);
      if (err instanceof WorkflowUpdateFailedError) throw new ConflictError((err as { cause?: Error }).cause?.message ?? err.message);
      if (err instanceof Error && /workflow execution already completed/i.test(err.message)) throw new ConflictError(`undo ${undoId} is closed`);
      throw err;
    }
  }
}
