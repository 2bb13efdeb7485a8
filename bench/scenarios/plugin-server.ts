// The plugin-server figures as bench metrics (a section of their own: Pushpin has no counterpart).

import type { PluginServerFigures } from '../pluginserver.js';
import { Better, type ScenarioResult } from './types.js';

const SECTION = 'Plugin server (one per Kong node)';
/** The issue's goal: access phases per second from one plugin-server process. */
export const ACCESS_PER_SEC_GOAL = 5000;

export function pluginServerMetrics(figures: readonly PluginServerFigures[]): ScenarioResult {
  const metrics: ScenarioResult['metrics'] = [];
  const notes: string[] = [];
  for (const f of figures) {
    const shipped = f.kind === 'grip-pluginserver';
    const key = shipped ? 'pluginserver' : 'pluginserver-kong-pdk';
    metrics.push(
      { key: `${key}-rate`, label: `access phases/s, ${f.kind}`, value: f.accessesPerSec, unit: '/s', better: Better.Higher, section: SECTION, digits: 0, ...(shipped ? { targetValue: ACCESS_PER_SEC_GOAL } : {}) },
      { key: `${key}-cpu`, label: `server CPU per access, ${f.kind}`, value: f.cpuUsPerAccess, unit: 'µs', better: Better.Lower, section: SECTION, digits: 0 },
    );
    notes.push(`${f.kind}: ${f.load.accesses} access phases in ${(f.load.elapsedMs / 1000).toFixed(1)} s, ${f.load.roundTripsPerAccess.toFixed(2)} RPC round trips each, ${f.load.serverCpuMs} ms server CPU${f.load.unexpected > 0 ? `, ${f.load.unexpected} phases that did not end in a token` : ''}`);
  }
  return { metrics, notes };
}
