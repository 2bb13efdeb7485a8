export * from './grip/types.js';
export * from './errors.js';
export type { Bus, BusEvent, BusListener, BusStatus, ItemHandler } from './bus/bus.js';
export { LiveCause, whenLive } from './bus/bus.js';
export { MemoryBus } from './bus/memory-bus.js';
export { NatsBus, type NatsBusOptions } from './bus/nats-bus.js';
export { channelToSubject, subjectToChannel, DEFAULT_SUBJECT_PREFIX } from './bus/subject.js';
