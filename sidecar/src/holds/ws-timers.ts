// The one-shot timers of a WebSocket session (origin retries, send-delayed), as a port so unit
// tests can run them on a fake clock. The callback takes its session as an argument: one shared
// function serves every session, with no closure per timer. Keep-alives are not here: they run
// on the shared KeepAliveWheel.

export type TimerHandle = unknown;

export interface Timers {
  setTimeout<A>(callback: (arg: A) => void, ms: number, arg: A): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export const NODE_TIMERS: Timers = {
  setTimeout: (callback, ms, arg) => setTimeout(callback, ms, arg),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout | undefined),
};
