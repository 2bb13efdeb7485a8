// Pairs the two systems' figures and renders them: a console table and bench/RESULTS.md.
// Pure: no I/O.

import { Better, type Metric } from './scenarios/types.js';

export interface SystemFigures {
  /** Metrics by key; a missing key means the scenario did not produce it. */
  metrics: Map<string, Metric>;
  /** Scenario errors, by scenario name. */
  errors: Map<string, string>;
  notes: string[];
}

export interface Row {
  label: string;
  unit: string;
  pushpin: number | undefined;
  kongGrip: number | undefined;
  /** kong-grip ÷ Pushpin. */
  ratio: number | undefined;
  /** The same figure on the bare node:http floor server, when it ran. */
  floor: number | undefined;
  better: Better;
  target: string;
  /** Whether kong-grip meets the target ('' when there is none or no figure). */
  met: 'yes' | 'no' | '';
  digits: number;
  /** Rendered under a heading of its own in RESULTS.md (see Metric.section). */
  section?: string;
}

export function pairRows(pushpin: SystemFigures, kongGrip: SystemFigures, floor?: SystemFigures): Row[] {
  const keys: string[] = [];
  for (const k of pushpin.metrics.keys()) keys.push(k);
  for (const k of kongGrip.metrics.keys()) if (!keys.includes(k)) keys.push(k);
  return keys.map((key) => {
    const a = pushpin.metrics.get(key);
    const b = kongGrip.metrics.get(key);
    const m = (a ?? b)!;
    const pv = a?.value;
    const kv = b?.value;
    const ratio = pv !== undefined && kv !== undefined && Number.isFinite(pv) && Number.isFinite(kv) && pv !== 0 ? kv / pv : undefined;
    return {
      label: m.label,
      unit: m.unit,
      pushpin: pv,
      kongGrip: kv,
      ratio,
      floor: floor?.metrics.get(key)?.value,
      better: m.better,
      target: describeTarget(m),
      met: judge(m, kv, ratio),
      digits: m.digits ?? 1,
      ...(m.section !== undefined ? { section: m.section } : {}),
    };
  });
}

function describeTarget(m: Metric): string {
  const op = m.better === Better.Lower ? '≤' : '≥';
  if (m.targetRatio !== undefined) return `ratio ${op} ${m.targetRatio}`;
  if (m.targetValue !== undefined) return `${op} ${m.targetValue}`;
  return m.better === Better.Lower ? 'lower is better' : 'higher is better';
}

function judge(m: Metric, value: number | undefined, ratio: number | undefined): Row['met'] {
  if (m.targetRatio !== undefined) {
    if (ratio === undefined) return '';
    return (m.better === Better.Lower ? ratio <= m.targetRatio : ratio >= m.targetRatio) ? 'yes' : 'no';
  }
  if (m.targetValue !== undefined) {
    if (value === undefined || !Number.isFinite(value)) return '';
    return (m.better === Better.Lower ? value <= m.targetValue : value >= m.targetValue) ? 'yes' : 'no';
  }
  return '';
}

export function formatNumber(v: number | undefined, digits: number): string {
  if (v === undefined) return 'n/a';
  if (Number.isNaN(v)) return '—';
  if (!Number.isFinite(v)) return String(v);
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function cells(r: Row, withFloor: boolean): string[] {
  const unit = r.unit ? ` ${r.unit}` : '';
  const value = (v: number | undefined): string => `${formatNumber(v, r.digits)}${v === undefined ? '' : unit}`;
  return [
    r.label,
    value(r.pushpin),
    value(r.kongGrip),
    r.ratio === undefined ? 'n/a' : `${r.ratio.toFixed(2)}×`,
    r.target,
    r.met,
    ...(withFloor ? [r.floor === undefined ? '' : value(r.floor)] : []),
  ];
}

const HEADERS = ['Scenario', 'Pushpin', 'kong-grip', 'kong-grip ÷ Pushpin', 'Target', 'Met'];
const FLOOR_HEADER = 'Floor (bare Node)';

function headers(rows: Row[]): { names: string[]; withFloor: boolean } {
  const withFloor = rows.some((r) => r.floor !== undefined);
  return { names: withFloor ? [...HEADERS, FLOOR_HEADER] : HEADERS, withFloor };
}

export function renderConsoleTable(rows: Row[]): string {
  const { names, withFloor } = headers(rows);
  const table = [names, ...rows.map((r) => cells(r, withFloor))];
  const widths = names.map((_, c) => Math.max(...table.map((r) => [...r[c]!].length)));
  const line = (r: string[]): string => r.map((v, c) => (c === 0 ? v.padEnd(widths[c]!) : v.padStart(widths[c]!))).join('  ');
  return [line(table[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...table.slice(1).map(line)].join('\n');
}

export function renderMarkdownTable(rows: Row[]): string {
  const { names, withFloor } = headers(rows);
  const esc = (s: string): string => s.replace(/\|/g, '\\|');
  return [
    `| ${names.join(' | ')} |`,
    `|${names.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`,
    ...rows.map((r) => `| ${cells(r, withFloor).map(esc).join(' | ')} |`),
  ].join('\n');
}

export interface ResultsDoc {
  command: string;
  startedAt: string;
  durationS: number;
  machine: string[];
  rows: Row[];
  pushpin: SystemFigures;
  kongGrip: SystemFigures;
  floor?: SystemFigures;
  method: string[];
  /** The previous file's kept part (keptPart), appended unchanged. */
  kept?: string;
}

/** Rows of the main table first, then each section's rows under its own heading. */
function renderSections(rows: Row[]): string[] {
  const sections = [...new Set(rows.flatMap((r) => (r.section === undefined ? [] : [r.section])))];
  const main = rows.filter((r) => r.section === undefined);
  return [
    ...(main.length > 0 || sections.length === 0 ? ['## Results', '', renderMarkdownTable(main), ''] : []),
    ...sections.flatMap((s) => [`## ${s}`, '', renderMarkdownTable(rows.filter((r) => r.section === s)), '']),
  ];
}

/**
 * Heading of the part of RESULTS.md a run does not regenerate: before/after figures that other
 * work measured by hand. Everything from this heading to the end of the previous file is kept.
 */
export const KEPT_HEADING = '## Before and after, measured by hand (kept across runs)';

/** The kept part of a previous results file (from KEPT_HEADING to its end), or '' when it has none. */
export function keptPart(previous: string | undefined): string {
  if (previous === undefined) return '';
  const lines = previous.split('\n');
  const at = lines.indexOf(KEPT_HEADING);
  return at < 0 ? '' : `${lines.slice(at).join('\n').trimEnd()}\n`;
}

export function renderResultsMarkdown(d: ResultsDoc): string {
  const behind = d.rows.filter((r) => r.met === 'no').map((r) => r.label);
  const errorLines = (name: string, f: SystemFigures): string[] => [...f.errors].map(([s, e]) => `- ${name}, ${s}: ${e}`);
  const errors = [...errorLines('Pushpin', d.pushpin), ...errorLines('kong-grip', d.kongGrip), ...(d.floor ? errorLines('floor', d.floor) : [])];
  return [
    '# kong-grip vs Pushpin: side-by-side benchmark',
    '',
    `Generated by \`bench/run.ts\` on ${d.startedAt} (run took ${d.durationS.toFixed(0)} s). Both systems ran on this`,
    'machine, one after the other, against the same origin process and the same client agents.',
    '',
    'Reproduce with:',
    '',
    '```sh',
    'bench/install-pushpin.sh   # once: Debian package pushpin 1.36 (+ condure, zurl)',
    'npm run build              # the sidecar under test: node sidecar/dist/process/cli.js',
    d.command,
    '```',
    '',
    '## Machine',
    '',
    ...d.machine.map((m) => `- ${m}`),
    '',
    ...renderSections(d.rows),
    behind.length === 0 ? 'No row with a target is behind.' : `Rows still short of their target: ${behind.join('; ')}.`,
    '',
    ...(errors.length > 0 ? ['## Scenario failures', '', ...errors, ''] : []),
    '## Notes',
    '',
    '### Pushpin',
    '',
    ...d.pushpin.notes.map((n) => `- ${n}`),
    '',
    '### kong-grip',
    '',
    ...d.kongGrip.notes.map((n) => `- ${n}`),
    '',
    ...(d.floor && d.floor.notes.length > 0 ? ['### Floor (bare node:http fan-out server)', '', ...d.floor.notes.map((n) => `- ${n}`), ''] : []),
    '## Method',
    '',
    ...d.method.map((m) => `- ${m}`),
    '',
    ...(d.kept !== undefined && d.kept !== '' ? [d.kept] : []),
  ].join('\n');
}
