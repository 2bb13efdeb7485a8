// Long-polling clients for the herd scenario. Each client sends GET, waits for the held
// response, records it and immediately polls again (on the same connection when the server
// allows keep-alive) — so one publish makes every client re-poll at once.

import net from 'node:net';
import type { PollStatus, RoundResult } from '../agent-protocol.js';
import { ChunkedDecoder } from '../wire/chunked.js';
import { BodyFraming, findHeadEnd, parseResponseHead, type ResponseHead } from '../wire/http-head.js';
import { MessageTag, monotonicMs, parseBenchMessage } from '../wire/message.js';

/** A client that got an error status or lost its connection polls again after this pause. */
const RETRY_AFTER_ERROR_MS = 250;

interface RoundWaiter {
  round: number;
  resolve: (r: RoundResult) => void;
  timer: NodeJS.Timeout;
}

export class PollHerd {
  private readonly clients: PollClient[] = [];
  readonly statuses: Record<string, number> = {};
  connectionErrors = 0;
  private readonly delivered = new Map<number, number>();
  private readonly latencies = new Map<number, number[]>();
  private waiters: RoundWaiter[] = [];
  private isStopped = false;

  constructor(
    readonly port: number,
    readonly path: string,
  ) {}

  get stopped(): boolean {
    return this.isStopped;
  }

  add(localAddress: string | undefined): Promise<void> {
    const client = new PollClient(this, localAddress);
    this.clients.push(client);
    return client.poll();
  }

  status(): PollStatus {
    let waiting = 0;
    for (const c of this.clients) if (c.isWaiting) waiting++;
    return { clients: this.clients.length, waiting, statuses: { ...this.statuses }, connectionErrors: this.connectionErrors };
  }

  onResponse(status: number, body: string, receivedAtMs: number): void {
    this.statuses[status] = (this.statuses[status] ?? 0) + 1;
    if (status !== 200) return;
    const msg = parseBenchMessage(body);
    if (!msg || msg.tag !== MessageTag.Measured) return;
    const n = (this.delivered.get(msg.seq) ?? 0) + 1;
    this.delivered.set(msg.seq, n);
    let lat = this.latencies.get(msg.seq);
    if (!lat) this.latencies.set(msg.seq, (lat = []));
    lat.push(receivedAtMs - msg.publishedAtMs);
    if (n >= this.clients.length) this.settle(msg.seq, false);
  }

  waitRound(round: number, timeoutMs: number): Promise<RoundResult> {
    if ((this.delivered.get(round) ?? 0) >= this.clients.length) return Promise.resolve(this.roundResult(round, false));
    return new Promise((resolve) => {
      const waiter: RoundWaiter = { round, resolve, timer: setTimeout(() => this.settle(round, true), timeoutMs) };
      this.waiters.push(waiter);
    });
  }

  stop(): void {
    this.isStopped = true;
    for (const c of this.clients) c.close();
  }

  private settle(round: number, timedOut: boolean): void {
    const keep: RoundWaiter[] = [];
    for (const w of this.waiters) {
      if (w.round === round) {
        clearTimeout(w.timer);
        w.resolve(this.roundResult(round, timedOut));
      } else keep.push(w);
    }
    this.waiters = keep;
  }

  private roundResult(round: number, timedOut: boolean): RoundResult {
    return {
      delivered: this.delivered.get(round) ?? 0,
      clients: this.clients.length,
      timedOut,
      latenciesMs: this.latencies.get(round) ?? [],
    };
  }
}

class PollClient {
  isWaiting = false;
  private socket: net.Socket | undefined;
  private buffer = '';
  private head: ResponseHead | undefined;
  private chunked: ChunkedDecoder | undefined;
  private body = '';

  constructor(
    private readonly herd: PollHerd,
    private readonly localAddress: string | undefined,
  ) {}

  /** Sends one poll; resolves when the request is written (first poll: when connected). */
  poll(): Promise<void> {
    if (this.herd.stopped) return Promise.resolve();
    this.isWaiting = true;
    const request = `GET ${this.herd.path} HTTP/1.1\r\nHost: 127.0.0.1:${this.herd.port}\r\n\r\n`;
    if (this.socket && !this.socket.destroyed) {
      this.socket.write(request);
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port: this.herd.port, host: '127.0.0.1', localAddress: this.localAddress, noDelay: true });
      this.socket = socket;
      this.buffer = '';
      this.head = undefined;
      socket.once('connect', () => {
        socket.write(request);
        resolve();
      });
      socket.on('data', (chunk: Buffer) => this.onData(chunk));
      socket.on('error', (err) => reject(err));
      socket.on('close', () => {
        if (this.socket !== socket) return;
        this.socket = undefined;
        if (this.isWaiting && !this.herd.stopped) {
          this.isWaiting = false;
          this.herd.connectionErrors++;
          setTimeout(() => void this.poll().catch(ignore), RETRY_AFTER_ERROR_MS);
        }
      });
    });
  }

  close(): void {
    this.socket?.destroy();
    this.socket = undefined;
  }

  private onData(chunk: Buffer): void {
    const receivedAtMs = monotonicMs();
    let text = chunk.toString('latin1');
    if (!this.head) {
      this.buffer += text;
      const end = findHeadEnd(this.buffer);
      if (end < 0) return;
      try {
        this.head = parseResponseHead(this.buffer.slice(0, end));
      } catch {
        this.socket?.destroy();
        return;
      }
      text = this.buffer.slice(end);
      this.buffer = '';
      this.body = '';
      this.chunked = this.head.framing === BodyFraming.Chunked ? new ChunkedDecoder() : undefined;
    }
    const head = this.head;
    let complete = false;
    switch (head.framing) {
      case BodyFraming.None:
        complete = true;
        break;
      case BodyFraming.Length:
        this.body += text;
        complete = this.body.length >= head.contentLength;
        break;
      case BodyFraming.Chunked:
        try {
          this.body += this.chunked!.push(text);
        } catch {
          this.socket?.destroy();
          return;
        }
        complete = this.chunked!.isDone;
        break;
      case BodyFraming.UntilClose:
        // Not used by the proxies under test for held responses; treat the data so far as whole.
        this.body += text;
        complete = true;
        break;
      default: {
        const never: never = head.framing;
        throw new Error(`unreachable framing ${String(never)}`);
      }
    }
    if (!complete) return;
    this.head = undefined;
    this.isWaiting = false;
    this.herd.onResponse(head.status, this.body, receivedAtMs);
    if (!head.keepAlive) this.close();
    if (head.status === 200) void this.poll().catch(ignore);
    else setTimeout(() => void this.poll().catch(ignore), RETRY_AFTER_ERROR_MS);
  }
}

/** Connection failures of re-polls are counted by the socket's close handler, which retries. */
function ignore(): void {}
