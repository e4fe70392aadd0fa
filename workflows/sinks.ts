import type { Sinks } from '@temporalio/workflow';

/**
 * Calls from the deploy workflow out to its worker that leave no trace in the history (Temporal
 * sinks): they are not made again on replay, so adding or removing one keeps histories replayable.
 */
export interface DeployerSinks extends Sinks {
  deployments: {
    /** The deployment closed with this outcome (for the worker's metrics). */
    closed(outcome: string): void;
  };
}
