export * from './grip/types.js';
export * from './errors.js';
export type { Bus, BusStatus, ItemHandler } from './bus/bus.js';
export { MemoryBus } from './bus/memory-bus.js';
