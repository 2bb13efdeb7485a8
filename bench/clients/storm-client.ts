// The storm's SSE clients: each holds one stream, records the ids it receives (IdLedger), and
// when the server ends its stream reconnects as an EventSource does, with `Last-Event-ID`, to
// the other address it knows (and back again on each failed attempt). Reconnects of one agent
// share a window of attempts in flight (AttemptWindow).

import type net from 'node:net';
import { ChunkedDecoder } from '../wire/chunked.js';
import { BodyFraming, findHeadEnd, parseResponseHead } from '../wire/http-head.js';
import { monotonicMs } from '../wire/message.js';
import { SseIdExtractor } from '../wire/sse-ids.js';
import { AttemptWindow } from './attempt-window.js';
import { IdLedger } from './id-ledger.js';
import { connectLoopback } from './loopback-socket.js';
import type { LocalEndpoint } from './open-many.js';

const OPEN_TIMEOUT_MS = 30_000;
/** Pause before a failed reconnect is tried again (on the other address). */
const RETRY_PAUSE_MS = 100;

/** An attempt that got a response other than 200. */
export class StatusError extends Error {
  constructor(readonly status: number) {
    super(`status ${status}, expected 200`);
  }
}

/** What the clients of one agent share: the reconnect window and the counters of failed reconnects. */
export class StormFleet {
  readonly clients: StormClient[] = [];
  /** Failed reconnect attempts by response status. */
  readonly statuses: Record<string, number> = {};
  /** Failed reconnect attempts without a response (refused, reset, closed before the head, timeout). */
  connectionErrors = 0;
  firstErrors: string[] = [];
  reconnects = 0;
  private readonly window: AttemptWindow;

  constructor(
    window: number,
    readonly takeEndpoint: () => LocalEndpoint,
  ) {
    this.window = new AttemptWindow(window);
  }

  /** A stream ended that we did not close: reconnect, through the window, until one opens. */
  reconnect(client: StormClient): void {
    this.window.run(async () => {
      if (client.isStopped) return;
      client.switchAddress();
      try {
        await client.connect();
        this.reconnects++;
      } catch (err) {
        if (err instanceof StatusError) this.statuses[err.status] = (this.statuses[err.status] ?? 0) + 1;
        else this.connectionErrors++;
        if (this.firstErrors.length < 5) this.firstErrors.push((err as Error).message);
        if (client.isStopped) return;
        setTimeout(() => this.reconnect(client), RETRY_PAUSE_MS);
      }
    });
  }

  get reconnectsPending(): number {
    return this.window.pending;
  }
}

export class StormClient {
  readonly ledger = new IdLedger();
  /** The `id:` of the last event received, sent back as Last-Event-ID. */
  lastEventId: string | undefined;
  isHeld = false;
  isStopped = false;
  /** Streams opened so far (the first, then one per reconnect). */
  opens = 0;
  /** When the current stream's response head arrived (monotonic ms). */
  heldAtMs = 0;
  /** When the last stream that was held ended (monotonic ms; 0: none has). */
  droppedAtMs = 0;
  private socket: net.Socket | undefined;
  private addressIndex: number;

  constructor(
    private readonly fleet: StormFleet,
    /** The addresses (ports on 127.0.0.1) this client knows; one for a proxy that restarts in place. */
    private readonly ports: number[],
    firstAddress: number,
    private readonly path: string,
  ) {
    this.addressIndex = firstAddress % ports.length;
  }

  get port(): number {
    return this.ports[this.addressIndex]!;
  }

  switchAddress(): void {
    this.addressIndex = (this.addressIndex + 1) % this.ports.length;
  }

  /** Opens a stream on the current address; resolves at a 200 head, rejects otherwise. */
  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const port = this.port;
      const chunkedRef: { decoder?: ChunkedDecoder } = {};
      const ids = new SseIdExtractor();
      let head = '';
      let open = false;
      const timer = setTimeout(() => fail(new Error(`no response head within ${OPEN_TIMEOUT_MS} ms`)), OPEN_TIMEOUT_MS);
      const fail = (err: Error): void => {
        clearTimeout(timer);
        if (!open) {
          socket.destroy();
          reject(err);
        }
      };
      const onId = (id: string): void => {
        const n = Number(id);
        if (!Number.isSafeInteger(n) || n <= 0) return;
        this.lastEventId = id;
        this.ledger.record(n);
      };
      const onBody = (chunk: Buffer): void => {
        let text = chunk.toString('latin1');
        if (chunkedRef.decoder) {
          try {
            text = chunkedRef.decoder.push(text);
          } catch {
            socket.destroy();
            return;
          }
        }
        ids.push(text, onId);
      };
      const onData = (chunk: Buffer): void => {
        if (open) {
          onBody(chunk);
          return;
        }
        head += chunk.toString('latin1');
        const end = findHeadEnd(head);
        if (end < 0) return;
        let parsed;
        try {
          parsed = parseResponseHead(head.slice(0, end));
        } catch (err) {
          fail(err as Error);
          return;
        }
        if (parsed.status !== 200) {
          fail(new StatusError(parsed.status));
          return;
        }
        clearTimeout(timer);
        open = true;
        this.isHeld = true;
        this.opens++;
        this.heldAtMs = monotonicMs();
        if (parsed.framing === BodyFraming.Chunked) chunkedRef.decoder = new ChunkedDecoder();
        resolve();
        const rest = chunk.subarray(chunk.length - (head.length - end));
        head = '';
        if (rest.length > 0) onBody(rest);
      };
      const socket = connectLoopback(port, this.fleet.takeEndpoint(), onData);
      this.socket = socket;
      socket.on('connect', () => {
        const last = this.lastEventId === undefined ? '' : `Last-Event-ID: ${this.lastEventId}\r\n`;
        socket.write(`GET ${this.path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n${last}\r\n`);
      });
      socket.on('error', (err) => fail(err));
      socket.on('close', () => {
        if (!open) {
          fail(new Error('connection closed before the response head'));
          return;
        }
        this.isHeld = false;
        this.droppedAtMs = monotonicMs();
        if (!this.isStopped) this.fleet.reconnect(this);
      });
    });
  }

  stop(): void {
    this.isStopped = true;
    this.socket?.destroy();
  }
}
