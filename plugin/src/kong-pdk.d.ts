// Types for the parts of kong-pdk 0.6.0 (CommonJS, untyped) that the launcher builds on: the
// plugin server (RPC methods Kong calls) and the module wrapper that turns a plugin module into
// the info Kong's query command reads.

declare module 'kong-pdk/server.js' {
  interface PdkLogger {
    debug(...args: unknown[]): void;
    info(...args: unknown[]): void;
    warn(...args: unknown[]): void;
    error(...args: unknown[]): void;
  }
  class Server {
    constructor(pluginDir: string | null, logger: PdkLogger, expireTtl?: number);
    /** The next instance number StartInstance hands out (incremented per instance). */
    instanceID: number;
    readonly plugins: Map<string, unknown>;
    readonly instances: Map<number, unknown>;
    /** Open events (one per phase in progress), by event id. */
    readonly events: Map<number, unknown>;
    StartInstance(cfg: { Name: string; Config: string }): Promise<{ Id: number }>;
    HandleEvent(event: { InstanceId: number; EventName: string }): Promise<{ Data: unknown; EventId: number }>;
    Step(data: { EventId: number; Data?: unknown }): Promise<{ Data: unknown; EventId: number }>;
    step(data: { EventId: number; Data?: unknown }, isError: boolean): Promise<{ Data: unknown; EventId: number }>;
    GetPluginInfo(name: string): Promise<unknown>;
    close(): void;
  }
  export = Server;
}

declare module 'kong-pdk/lib/mod.js' {
  export class Module {
    constructor(name: string, path: string | undefined, literal: unknown);
    readonly name: string;
  }
}
