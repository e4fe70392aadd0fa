export { startFleet, StandinHost } from './fleet';
export type {
  StandinFleet,
  StandinHostSpec,
  StandinHostKind,
  StartFleetOptions,
  StandinGeneration,
  CommandLogEntry,
  ActivationFault,
} from './fleet';
export { fleetFlakeFiles, fleetFlakeLock, nixSystem, STANDIN_KERNEL } from './flake';
export type { FleetFlakeFiles, FleetFlakeOptions } from './flake';
export { createFleetFlakeRepo } from './flake-repo';
export type { FleetFlakeRepo } from './flake-repo';
export { waitFor } from './wait';
