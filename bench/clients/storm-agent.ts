// One agent's side of the storm scenario: opens its share of the clients, and answers the
// orchestrator's waits (every client receiving; every marked client on a new stream; every
// client at its channel's last id) by re-checking its own state every few milliseconds.

import type { OpenResult, StormMoved, StormReceiving, StormTally, StormTarget } from '../agent-protocol.js';
import { LocalEndpoints, openMany } from './open-many.js';
import { StormClient, StormFleet } from './storm-client.js';

const CHECK_EVERY_MS = 10;

async function until<T>(check: () => T | undefined, timeoutMs: number, atTimeout: () => T): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = check();
    if (r !== undefined) return r;
    if (Date.now() > deadline) return atTimeout();
    await new Promise((res) => setTimeout(res, CHECK_EVERY_MS));
  }
}

export class StormAgent {
  private fleet: StormFleet | undefined;
  private channelOf: number[] = [];
  /** Marked clients and how many streams each had opened when marked. */
  private marked: { client: StormClient; opens: number }[] = [];

  async open(target: StormTarget, count: number): Promise<OpenResult> {
    if (this.fleet) throw new Error('storm clients already open in this agent');
    const endpoints = new LocalEndpoints(target.srcAddrs, target.localPorts);
    let next = 0;
    const fleet = new StormFleet(target.window, () => endpoints.take(next++));
    this.fleet = fleet;
    const channels = target.paths.length;
    for (let i = 0; i < count; i++) {
      const number = target.first + i * target.stride;
      const channel = number % channels;
      this.channelOf.push(channel);
      fleet.clients.push(new StormClient(fleet, target.ports, Math.floor(number / channels), target.paths[channel]!));
    }
    const limits = { deadlineMs: target.deadlineMs, maxFailuresInARow: target.maxFailuresInARow };
    return openMany(count, target.window, target.retries, (i) => fleet.clients[i]!.connect(), limits);
  }

  waitReceiving(timeoutMs: number): Promise<StormReceiving> {
    const clients = this.requireFleet().clients;
    const count = (): number => clients.reduce((s, c) => s + (c.ledger.firstId !== undefined ? 1 : 0), 0);
    return until<StormReceiving>(
      () => (count() === clients.length ? { clients: clients.length, receiving: clients.length, timedOut: false } : undefined),
      timeoutMs,
      () => ({ clients: clients.length, receiving: count(), timedOut: true }),
    );
  }

  /** Marks the clients held on `port` now (all held clients when none is given). */
  mark(port?: number): { marked: number } {
    this.marked = this.requireFleet()
      .clients.filter((c) => c.isHeld && (port === undefined || c.port === port))
      .map((client) => ({ client, opens: client.opens }));
    return { marked: this.marked.length };
  }

  awaitMoved(timeoutMs: number): Promise<StormMoved> {
    const state = (timedOut: boolean): StormMoved => {
      let moved = 0;
      let lastReheldAtMs = 0;
      let firstDroppedAtMs = 0;
      let lastDroppedAtMs = 0;
      const gapsMs: number[] = [];
      for (const m of this.marked) {
        if (m.client.opens > m.opens) {
          const dropped = m.client.droppedAtMs;
          if (firstDroppedAtMs === 0 || dropped < firstDroppedAtMs) firstDroppedAtMs = dropped;
          lastDroppedAtMs = Math.max(lastDroppedAtMs, dropped);
        }
        if (m.client.isHeld && m.client.opens > m.opens) {
          moved++;
          gapsMs.push(m.client.heldAtMs - m.client.droppedAtMs);
          lastReheldAtMs = Math.max(lastReheldAtMs, m.client.heldAtMs);
        }
      }
      return { marked: this.marked.length, moved, lastReheldAtMs, firstDroppedAtMs, lastDroppedAtMs, gapsMs, timedOut };
    };
    return until<StormMoved>(() => {
      const s = state(false);
      return s.moved === s.marked ? s : undefined;
    }, timeoutMs, () => state(true));
  }

  waitLast(lastIds: number[], timeoutMs: number): Promise<StormTally> {
    const fleet = this.requireFleet();
    const complete = (): number => fleet.clients.reduce((s, c, i) => s + (c.ledger.highest >= (lastIds[this.channelOf[i]!] ?? 0) ? 1 : 0), 0);
    const tally = (timedOut: boolean): StormTally => {
      let lost = 0;
      let duplicated = 0;
      let withoutIds = 0;
      let held = 0;
      fleet.clients.forEach((c, i) => {
        const t = c.ledger.tally(lastIds[this.channelOf[i]!] ?? 0);
        lost += t.lost;
        duplicated += t.duplicated;
        if (c.ledger.firstId === undefined) withoutIds++;
        if (c.isHeld) held++;
      });
      return {
        clients: fleet.clients.length,
        held,
        complete: complete(),
        withoutIds,
        lost,
        duplicated,
        reconnects: fleet.reconnects,
        statuses: { ...fleet.statuses },
        connectionErrors: fleet.connectionErrors,
        firstErrors: fleet.firstErrors,
        timedOut,
      };
    };
    return until<StormTally>(() => (complete() === fleet.clients.length ? tally(false) : undefined), timeoutMs, () => tally(true));
  }

  close(): { closed: number } {
    const clients = this.fleet?.clients ?? [];
    for (const c of clients) c.stop();
    this.fleet = undefined;
    this.channelOf = [];
    this.marked = [];
    return { closed: clients.length };
  }

  private requireFleet(): StormFleet {
    if (!this.fleet) throw new Error('no storm clients open in this agent');
    return this.fleet;
  }
}
