import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

// A TCP relay between a client (the sidecar) and a server (nats-server) that a test can cut and
// restore: a network partition on one link while the server keeps running and storing what
// other clients publish. While cut, existing connections are reset and new ones are refused
// (accepted, then destroyed), so the client sees its connection lost and its retries fail.

export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private isCut = false;
  /** Connections the relay has accepted while not cut. */
  connections = 0;

  private constructor(private readonly server: Server, readonly port: number) {}

  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
    let proxy: TcpProxy | undefined;
    const server = createServer((client) => {
      if (proxy === undefined || proxy.isCut) {
        client.destroy();
        return;
      }
      proxy.connections++;
      const upstream = connect({ host: targetHost, port: targetPort });
      const pair = [client, upstream];
      for (const s of pair) {
        proxy.sockets.add(s);
        s.on('error', () => undefined);
        s.once('close', () => {
          proxy?.sockets.delete(s);
          for (const other of pair) other.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy = new TcpProxy(server, (server.address() as AddressInfo).port);
    return proxy;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** Resets every relayed connection and refuses new ones until restore(). */
  cut(): void {
    this.isCut = true;
    for (const s of this.sockets) s.resetAndDestroy();
    this.sockets.clear();
  }

  restore(): void {
    this.isCut = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
