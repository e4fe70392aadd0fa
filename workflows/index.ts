export { deployWorkflow } from './deploy';
export { buildWorkflow } from './build';
export { waveWorkflow } from './wave';
export { hostOpsWorkflow } from './host-ops';
export { fleetLockWorkflow } from './fleet-lock';
export { dryRunWorkflow, hostChangesWorkflow } from './dry-run';
export { smokeWorkflow } from './smoke';
export { undoWorkflow } from './undo';
