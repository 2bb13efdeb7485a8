import type { GripPdk } from '../../plugin/src/grip.js';
import type { HeaderTable } from '../../plugin/src/handoff.js';

// A typed stand-in for the `kong` object kong-pdk hands to a phase: records every call (the
// method name as Kong would receive it) and answers from a scripted request. Each call stands
// for one Kong round trip, so `calls.length` is the plugin's PDK cost for the request.

export interface PdkCall {
  method: string;
  args: unknown[];
}

export interface FakeRequestScript {
  /** What kong.client.get_consumer() returns (a Kong consumer row or nil). */
  consumer?: unknown;
  /** Upstream request headers before the plugin runs (lower-case names). */
  headers?: Record<string, string[]>;
  /** Make this method reject, as a PDK error would. */
  failOn?: string;
}

export class FakePdk implements GripPdk {
  readonly calls: PdkCall[] = [];
  readonly upstreamHeaders: Record<string, string[]>;
  exit: { status: number; body?: unknown; headers?: Record<string, string> } | undefined;

  constructor(private readonly script: FakeRequestScript) {
    this.upstreamHeaders = structuredClone(script.headers ?? {});
  }

  private record(method: string, args: unknown[]): void {
    this.calls.push({ method, args });
    if (this.script.failOn === method) throw new Error(`PDK method ${method} failed: scripted failure`);
  }

  readonly client = {
    get_consumer: async (): Promise<unknown> => { this.record('kong.client.get_consumer', []); return this.script.consumer; },
  };

  readonly service = {
    request: {
      set_headers: async (headers: HeaderTable): Promise<unknown> => {
        this.record('kong.service.request.set_headers', [headers]);
        // Kong semantics: each named header is replaced; an empty array removes it.
        for (const [name, value] of Object.entries(headers)) {
          const values = Array.isArray(value) ? value : [value];
          if (values.length === 0) delete this.upstreamHeaders[name.toLowerCase()];
          else this.upstreamHeaders[name.toLowerCase()] = values;
        }
        return undefined;
      },
    },
  };

  readonly response = {
    exit: async (status: number, body?: unknown, headers?: Record<string, string>): Promise<unknown> => {
      this.record('kong.response.exit', [status, body, headers].filter((a) => a !== undefined));
      this.exit = { status, ...(body === undefined ? {} : { body }), ...(headers === undefined ? {} : { headers }) };
      return undefined;
    },
  };

  readonly log = {
    err: async (...message: string[]): Promise<unknown> => {
      this.record('kong.log.err', message);
      return undefined;
    },
  };

  methods(): string[] {
    return this.calls.map((c) => c.method);
  }
}
