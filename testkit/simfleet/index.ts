export { startSimFleet, SimEndpoint } from './fleet';
export type { SimFleet, SimFleetStats, StartSimFleetOptions } from './fleet';
export { SimHost, simFlake } from './host';
export type { SimHostSpec, SimHostKind, SimLatency, SimActivationFault, SimCommandLogEntry, SimFlake } from './host';
export { ed25519Pair } from './keys';
