import net from 'node:net';
import type { LocalEndpoint } from './open-many.js';

// A client socket to 127.0.0.1 for the bench's stream clients.

/**
 * One read buffer for every socket in the agent: with `onread`, Node reads straight into it and
 * calls us synchronously, skipping the stream machinery ('data' events, a Buffer per read).
 * Everything kept past the callback must be copied (strings, or Buffer.from in the frame parser).
 */
const SHARED_READ_BUFFER = Buffer.allocUnsafe(256 * 1024);

export function connectLoopback(port: number, local: LocalEndpoint, onData: (chunk: Buffer) => void): net.Socket {
  return net.connect({
    port,
    host: '127.0.0.1',
    ...local,
    noDelay: true,
    onread: {
      buffer: SHARED_READ_BUFFER,
      callback: (nread: number, buf: Uint8Array): boolean => {
        onData(Buffer.from(buf.buffer, buf.byteOffset, nread));
        return true;
      },
    },
  });
}
