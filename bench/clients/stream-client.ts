// One held SSE or WebSocket connection on a raw `net` socket, with minimal parsing: the clients
// must not be the bottleneck when thousands share one agent process.

import type net from 'node:net';
import { StreamKind } from '../agent-protocol.js';
import { ChunkedDecoder } from '../wire/chunked.js';
import { BodyFraming, findHeadEnd, parseResponseHead } from '../wire/http-head.js';
import { monotonicMs, parseBenchMessage } from '../wire/message.js';
import { SseDataExtractor } from '../wire/sse-extract.js';
import { encodeClientControlFrame, encodeWsHandshake, WsFrameParser, type WsFrameSink, WsOpcode } from '../wire/ws-frames.js';
import type { DeliveryRecorder, StreamProgress } from './delivery-recorder.js';
import { connectLoopback } from './loopback-socket.js';
import type { LocalEndpoint } from './open-many.js';

const OPEN_TIMEOUT_MS = 30_000;

export class StreamClient implements StreamProgress, WsFrameSink {
  lastSeq = -1;
  private readonly socket: net.Socket;
  private head = '';
  private isOpen = false;
  private isClosedByUs = false;
  private chunked: ChunkedDecoder | undefined;
  private readonly sse = new SseDataExtractor();
  private readonly ws = new WsFrameParser();
  private receivedAtMs = 0;

  /** Resolves once the server answered 200 (SSE) or 101 (WebSocket); rejects otherwise. */
  readonly opened: Promise<void>;

  constructor(
    private readonly kind: StreamKind,
    port: number,
    path: string,
    local: LocalEndpoint,
    private readonly recorder: DeliveryRecorder,
  ) {
    let resolveOpen!: () => void;
    let rejectOpen!: (err: Error) => void;
    this.opened = new Promise((res, rej) => {
      resolveOpen = res;
      rejectOpen = rej;
    });
    const timer = setTimeout(() => fail(new Error(`no response head within ${OPEN_TIMEOUT_MS} ms`)), OPEN_TIMEOUT_MS);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      if (!this.isOpen) {
        this.socket.destroy();
        rejectOpen(err);
      }
    };
    this.socket = connectLoopback(port, local, (chunk) => onData(chunk));
    this.socket.on('connect', () => {
      const host = `127.0.0.1:${port}`;
      this.socket.write(
        kind === StreamKind.Ws
          ? encodeWsHandshake(host, path)
          : `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nAccept: text/event-stream\r\n\r\n`,
      );
    });
    const onData = (chunk: Buffer): void => {
      this.receivedAtMs = monotonicMs();
      if (this.isOpen) {
        this.onBody(chunk);
        return;
      }
      this.head += chunk.toString('latin1');
      const end = findHeadEnd(this.head);
      if (end < 0) return;
      let parsed;
      try {
        parsed = parseResponseHead(this.head.slice(0, end));
      } catch (err) {
        fail(err as Error);
        return;
      }
      const want = kind === StreamKind.Ws ? 101 : 200;
      if (parsed.status !== want) {
        fail(new Error(`status ${parsed.status}, expected ${want}`));
        return;
      }
      clearTimeout(timer);
      this.isOpen = true;
      if (kind === StreamKind.Sse && parsed.framing === BodyFraming.Chunked) this.chunked = new ChunkedDecoder();
      recorder.onStreamOpened();
      resolveOpen();
      const rest = chunk.subarray(chunk.length - (this.head.length - end));
      this.head = '';
      if (rest.length > 0) this.onBody(rest);
    };
    this.socket.on('error', (err) => fail(err));
    this.socket.on('close', () => {
      if (!this.isOpen) {
        fail(new Error('connection closed before the response head'));
        return;
      }
      this.isOpen = false;
      if (this.isClosedByUs) recorder.onStreamClosedByUs();
      else recorder.onStreamLost();
    });
  }

  close(): void {
    this.isClosedByUs = true;
    this.socket.destroy();
  }

  private onBody(chunk: Buffer): void {
    if (this.kind === StreamKind.Ws) {
      try {
        this.ws.push(chunk, this);
      } catch {
        this.socket.destroy();
      }
      return;
    }
    let text = chunk.toString('latin1');
    if (this.chunked) {
      try {
        text = this.chunked.push(text);
      } catch {
        this.socket.destroy();
        return;
      }
    }
    this.sse.push(text, this.onSseData);
  }

  private readonly onSseData = (text: string, start: number, end: number): void => {
    const msg = parseBenchMessage(text, start, end);
    if (msg) this.recorder.onMessage(this, msg, this.receivedAtMs);
  };

  onMessage(opcode: typeof WsOpcode.Text | typeof WsOpcode.Binary, payload: Buffer): void {
    if (opcode !== WsOpcode.Text) return;
    const msg = parseBenchMessage(payload.toString('latin1'));
    if (msg) this.recorder.onMessage(this, msg, this.receivedAtMs);
  }

  onControl(opcode: typeof WsOpcode.Close | typeof WsOpcode.Ping | typeof WsOpcode.Pong, payload: Buffer): void {
    switch (opcode) {
      case WsOpcode.Ping:
        this.socket.write(encodeClientControlFrame(WsOpcode.Pong, payload.subarray(0, 125)));
        return;
      case WsOpcode.Close:
        this.socket.end(encodeClientControlFrame(WsOpcode.Close, payload.subarray(0, 2)));
        return;
      case WsOpcode.Pong:
        return;
      default: {
        const never: never = opcode;
        throw new Error(`unreachable opcode ${String(never)}`);
      }
    }
  }
}
