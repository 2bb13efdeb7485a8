// What every scenario gets and returns.

import type { AgentPool } from '../agent-pool.js';
import type { OriginStats } from '../origin.js';
import type { Target } from '../target.js';

export interface ScenarioContext {
  target: Target;
  agents: AgentPool;
  originStats(): Promise<OriginStats>;
  /** Local source addresses for client connections (empty: kernel's choice). */
  srcAddrs: string[];
  /** Connection attempts in flight per agent. */
  window: number;
  log(line: string): void;
}

export const Better = { Lower: 'lower', Higher: 'higher' } as const;
export type Better = (typeof Better)[keyof typeof Better];

/** One measured figure. `key` is stable across systems so rows can be paired. */
export interface Metric {
  key: string;
  label: string;
  value: number;
  unit: string;
  better: Better;
  /** kong-grip / Pushpin ratio the issue asks for, if any (≤ for Lower, ≥ for Higher). */
  targetRatio?: number;
  /** A goal on the value itself (e.g. 5 of 5 rounds), if any. */
  targetValue?: number;
  /** Digits after the decimal point when printed. */
  digits?: number;
  /** A results section of its own (e.g. "Scale run"); none: the main table. */
  section?: string;
}

export interface ScenarioResult {
  metrics: Metric[];
  /** Facts worth reading beside the figures (failures, drops, completeness details). */
  notes: string[];
}

export const noteIf = (cond: boolean, note: string, notes: string[]): void => {
  if (cond) notes.push(note);
};
