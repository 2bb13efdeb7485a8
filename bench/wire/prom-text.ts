// Reads one unlabelled sample from Prometheus' text exposition format (what the sidecar's
// /metrics serves). Pure: no I/O.

/** The value of `name`'s sample without labels, or undefined when there is none. */
export function promSample(text: string, name: string): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ') continue;
    const v = Number(rest.trim().split(/\s+/)[0]);
    return Number.isFinite(v) ? v : undefined;
  }
  return undefined;
}
