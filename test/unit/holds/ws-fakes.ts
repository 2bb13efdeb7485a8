import { EventEmitter, once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { decodeWsEvents, encodeWsEvents, type DecodedWsEvent, type WsEvent } from '../../../sidecar/src/grip/ws-events.js';
import type { HeaderList } from '../../../sidecar/src/grip/types.js';
import type { OpenRefusal } from '../../../sidecar/src/holds/ws-origin-link.js';
import type { WsHandshakePort } from '../../../sidecar/src/holds/ws-session.js';
import type { PostWsEvents, WsOriginOutcome } from '../../../sidecar/src/origin/ws-origin.js';

// Fakes for driving a WebSocket session and its origin link without sockets, an origin or time:
// an origin whose POSTs are answered by hand, and a client socket and ws object that record what
// the session does to them. The session's timers and the keep-alive wheel run on FakeClock
// (fake-clock.ts).

/** Lets promise continuations (an answered POST) run; no time passes. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export interface PostCall {
  url: URL;
  headers: HeaderList;
  events: DecodedWsEvent[];
  answer(outcome: WsOriginOutcome): void;
}

/** The PostWsEvents port: each POST waits until the test answers it. */
export class FakeOrigin extends EventEmitter {
  readonly calls: PostCall[] = [];
  readonly post: PostWsEvents = (url, headers, body) => new Promise((resolve) => {
    this.calls.push({ url, headers, events: decodeWsEvents(body), answer: resolve });
    this.emit('post');
  });

  /** The nth POST (1-based), once it has been sent. */
  async call(n: number): Promise<PostCall> {
    while (this.calls.length < n) await once(this, 'post');
    return this.calls[n - 1] as PostCall;
  }

  /** The events of every POST so far. */
  get posted(): DecodedWsEvent[][] {
    return this.calls.map((c) => c.events);
  }
}

export function eventsReply(events: WsEvent[], headers: HeaderList = []): WsOriginOutcome {
  return { type: 'reply', status: 200, reason: 'OK', headers: [['Content-Type', 'application/websocket-events'], ...headers], body: encodeWsEvents(events) };
}

/** OPEN accepted with the GRIP extension, then `events`. */
export function openReply(events: WsEvent[] = [], headers: HeaderList = []): WsOriginOutcome {
  return eventsReply([{ type: 'OPEN' }, ...events], [['Sec-WebSocket-Extensions', 'grip'], ...headers]);
}

export function text(content: string): WsEvent {
  return { type: 'TEXT', content: Buffer.from(content) };
}

export function controlMessage(json: object): WsEvent {
  return text(`c:${JSON.stringify(json)}`);
}

/** The client's raw socket: writes are recorded; writableLength can be set to play a slow client. */
export class FakeSocket extends EventEmitter {
  readonly writes: Buffer[] = [];
  writableLength = 0;
  writable = true;
  destroyed = false;
  ended: Buffer | undefined;

  write(chunk: Buffer): boolean {
    this.writes.push(chunk);
    this.emit('write', chunk);
    return true;
  }

  end(chunk: Buffer): void {
    this.ended = chunk;
    this.writable = false;
    this.emit('finish');
  }

  destroy(): void {
    this.destroyed = true;
  }

  asDuplex(): Duplex {
    return this as unknown as Duplex;
  }
}

/** The ws object of an accepted client: the test emits what the client does, and sees what the session asks of it. */
export class FakeWs extends EventEmitter {
  readyState = 1;
  paused = false;
  terminated = false;
  closeSent: { code: number | undefined; reason: string | undefined } | undefined;

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
  }

  close(code?: number, reason?: string): void {
    this.closeSent = { code, reason };
    this.readyState = 2;
    this.emit('close-sent');
  }

  terminate(): void {
    this.terminated = true;
    this.readyState = 3;
  }

  /** The client sends a text message. */
  sendText(content: string): void {
    this.emit('message', Buffer.from(content), false);
  }

  /** The client's close frame (or, with 1006, its drop) arrives. */
  clientCloses(code: number, reason = ''): void {
    this.readyState = 3;
    this.emit('close', code, Buffer.from(reason));
  }
}

/** The handshake port: records the answer the session gives the upgrade. */
export class FakeHandshake extends EventEmitter implements WsHandshakePort {
  readonly ws = new FakeWs();
  accepted: { head: Buffer; originHeaders: HeaderList; clientHeaders: HeaderList } | undefined;
  refused: OpenRefusal | undefined;
  /** accept() finds the client gone (ws dropped the socket). */
  isClientGone = false;

  accept(_req: IncomingMessage, _socket: Duplex, head: Buffer, originHeaders: HeaderList, clientHeaders: HeaderList): WebSocket | undefined {
    this.accepted = { head, originHeaders, clientHeaders };
    this.emit('accept');
    return this.isClientGone ? undefined : this.ws as unknown as WebSocket;
  }

  refuse(_socket: Duplex, refusal: OpenRefusal): void {
    this.refused = refusal;
    this.emit('refuse');
  }
}
