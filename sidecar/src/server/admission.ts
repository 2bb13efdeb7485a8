import { CONNECTION_LIMIT, SHUTTING_DOWN, type Refusal } from './refusals.js';

// The one gate every client connection passes, plain request or WebSocket upgrade: refused
// while draining or over limits.maxConnections, else counted until released.

export type ConnectionKind = 'http' | 'ws';

export class Admission {
  private readonly active: Record<ConnectionKind, number> = { http: 0, ws: 0 };
  private isDraining = false;

  constructor(private readonly maxConnections: number) {}

  /** Undefined when admitted (then counted until release(kind)); otherwise the answer to give. */
  admit(kind: ConnectionKind): Refusal | undefined {
    if (this.isDraining) return SHUTTING_DOWN;
    // Each kind is held to the limit on its own for now, so one process can hold up to twice
    // maxConnections; one shared count is a behaviour change of its own.
    if (this.active[kind] >= this.maxConnections) return CONNECTION_LIMIT;
    this.active[kind]++;
    return undefined;
  }

  release(kind: ConnectionKind): void {
    this.active[kind]--;
  }

  count(kind: ConnectionKind): number {
    return this.active[kind];
  }

  /** From now on every new connection is refused with SHUTTING_DOWN. */
  startDrain(): void {
    this.isDraining = true;
  }

  get draining(): boolean {
    return this.isDraining;
  }
}
