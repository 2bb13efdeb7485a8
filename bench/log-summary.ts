// Condenses a proxy's warnings and errors into a few lines for the results page: messages with
// their variable parts (ids, numbers) blanked out, counted. Pure: no I/O.

const MAX_LINES = 5;

/** Blanks ids and numbers so repeats of one problem group together. */
export function normalizeLogMessage(msg: string): string {
  return msg
    // Connection ids such as `1-2-3` or `0-4-a`: the whole token after `id=`.
    .replace(/\bid=[^\s,;]+/g, 'id=…')
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, '…')
    .replace(/\b\d+(?:[-.:]\d+)*\b/g, 'N')
    .trim();
}

function summarize(counts: Map<string, number>): string[] {
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .slice(0, MAX_LINES)
    .map(([msg, n]) => `${n} × ${msg}`);
}

/** Pushpin runner output: `[WARN] 2026-01-01 00:00:00.000 [handler] message`. */
export function summarizePushpinLog(text: string): string[] {
  const counts = new Map<string, number>();
  const count = (key: string): void => void counts.set(key, (counts.get(key) ?? 0) + 1);
  for (const line of text.split('\n')) {
    const m = /^\[(WARN|ERR|ERROR|CRIT)\] \S+ \S+ (.*)$/.exec(line);
    if (!m) continue;
    count(`${m[1]} ${normalizeLogMessage(m[2]!)}`);
  }
  return summarize(counts);
}

/** pino JSON lines: level ≥ 40 (warn) with `msg` and, when present, `code`. */
export function summarizePinoLog(text: string): string[] {
  const counts = new Map<string, number>();
  const count = (key: string): void => void counts.set(key, (counts.get(key) ?? 0) + 1);
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (!line.startsWith('{')) {
      // Not a log record: something written straight to stdout/stderr (a crash, a warning).
      count(`OUTPUT ${normalizeLogMessage(line)}`);
      continue;
    }
    let rec: { level?: number; msg?: string; code?: string };
    try {
      rec = JSON.parse(line) as typeof rec;
    } catch {
      continue;
    }
    if ((rec.level ?? 0) < 40) continue;
    count(`${(rec.level ?? 0) >= 50 ? 'ERROR' : 'WARN'} ${rec.msg ?? ''}${rec.code ? ` (${rec.code})` : ''}`);
  }
  return summarize(counts);
}
