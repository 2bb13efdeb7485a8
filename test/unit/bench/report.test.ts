import test from 'ava';
import { formatNumber, keptPart, KEPT_HEADING, pairRows, renderMarkdownTable, renderResultsMarkdown, type SystemFigures } from '../../../bench/report.js';
import { Better, type Metric } from '../../../bench/scenarios/types.js';

function figures(metrics: Metric[]): SystemFigures {
  return { metrics: new Map(metrics.map((m) => [m.key, m])), errors: new Map(), notes: [] };
}

const p99 = (value: number): Metric => ({ key: 'sse-p99', label: 'SSE p99', value, unit: 'ms', better: Better.Lower, targetRatio: 0.5 });
const rate = (value: number): Metric => ({ key: 'rate', label: 'streams/s', value, unit: '/s', better: Better.Higher, targetRatio: 3, digits: 0 });
const rounds = (value: number): Metric => ({ key: 'rounds', label: 'rounds', value, unit: '', better: Better.Higher, targetValue: 5, digits: 0 });

test('pairs figures by key and computes kong-grip ÷ Pushpin', (t) => {
  const [row] = pairRows(figures([p99(200)]), figures([p99(50)]));
  t.is(row?.ratio, 0.25);
  t.is(row?.met, 'yes');
  t.is(row?.target, 'ratio ≤ 0.5');
});

test('judges higher-is-better ratios and absolute goals', (t) => {
  const rows = pairRows(figures([rate(1000), rounds(2)]), figures([rate(2500), rounds(5)]));
  t.is(rows[0]?.met, 'no'); // 2.5× < 3×
  t.is(rows[1]?.met, 'yes'); // 5 of 5 rounds
  t.is(rows[1]?.target, '≥ 5');
});

test('a figure missing on one side gives no ratio and no verdict', (t) => {
  const [row] = pairRows(figures([p99(200)]), figures([]));
  t.is(row?.kongGrip, undefined);
  t.is(row?.ratio, undefined);
  t.is(row?.met, '');
  t.regex(renderMarkdownTable([row!]), /\| SSE p99 \| 200\.0 ms \| n\/a \| n\/a \| ratio ≤ 0\.5 \|  \|/);
});

test('formats thousands, NaN and missing values', (t) => {
  t.is(formatNumber(296000, 0), '296,000');
  t.is(formatNumber(NaN, 1), '—');
  t.is(formatNumber(undefined, 1), 'n/a');
});

/** A results page for two systems' figures, with fixed run details. */
function resultsPage(command: string, pp: ReturnType<typeof figures>, kg: ReturnType<typeof figures>, method: string[]): string {
  return renderResultsMarkdown({
    command, startedAt: '2026-01-01T00:00:00.000Z', durationS: 12, machine: ['2 cores'],
    rows: pairRows(pp, kg), pushpin: pp, kongGrip: kg, method,
  });
}

test('the results page carries the command, the table and the rows still behind', (t) => {
  const pp = figures([p99(200), rate(1000)]);
  const kg = figures([p99(50), rate(1500)]);
  kg.errors.set('ws-5000', 'kong-grip did not start');
  const md = resultsPage('npm run bench -- --n 1000', pp, kg, ['fresh proxy per scenario']);
  t.true(md.includes('npm run bench -- --n 1000'));
  t.true(md.includes('| SSE p99 | 200.0 ms | 50.0 ms | 0.25× | ratio ≤ 0.5 | yes |'));
  t.true(md.includes('Rows still short of their target: streams/s.'));
  t.true(md.includes('- kong-grip, ws-5000: kong-grip did not start'));
});

test('adds the floor column only when the floor ran, blank for rows it has no figure for', (t) => {
  const floor = figures([p99(20)]);
  const rows = pairRows(figures([p99(200), rate(1000)]), figures([p99(50), rate(1500)]), floor);
  const md = renderMarkdownTable(rows);
  t.true(md.startsWith('| Scenario | Pushpin | kong-grip | kong-grip ÷ Pushpin | Target | Met | Floor (bare Node) |'));
  t.true(md.includes('| SSE p99 | 200.0 ms | 50.0 ms | 0.25× | ratio ≤ 0.5 | yes | 20.0 ms |'));
  t.true(md.includes('| streams/s | 1,000 /s | 1,500 /s | 1.50× | ratio ≥ 3 | no |  |'));
  t.false(renderMarkdownTable(pairRows(figures([p99(1)]), figures([p99(1)]))).includes('Floor'));
});

test('rows with a section get a heading and table of their own after the main table', (t) => {
  const held = (value: number): Metric => ({ key: 'scale-held', label: 'Scale N=100: SSE streams held', value, unit: '', better: Better.Higher, targetValue: 100, digits: 0, section: 'Scale run' });
  const pp = figures([p99(200), held(20)]);
  const kg = figures([p99(50), held(100)]);
  const md = resultsPage('npm run bench -- --scenarios sse,scale', pp, kg, []);
  const results = md.indexOf('## Results');
  const scale = md.indexOf('## Scale run');
  t.true(results >= 0 && scale > results);
  t.true(md.indexOf('| SSE p99 |') < scale);
  t.true(md.indexOf('| Scale N=100: SSE streams held | 20 | 100 | 5.00× | ≥ 100 | yes |') > scale);
});

test('a run of only sectioned rows has no empty main table', (t) => {
  const held: Metric = { key: 'scale-held', label: 'held', value: 1, unit: '', better: Better.Higher, section: 'Scale run' };
  const kg = figures([held]);
  const md = renderResultsMarkdown({ command: 'x', startedAt: 'y', durationS: 1, machine: [], rows: pairRows(figures([]), kg), pushpin: figures([]), kongGrip: kg, method: [] });
  t.false(md.includes('## Results'));
  t.true(md.includes('## Scale run'));
});

test('a new results page keeps the previous file\'s hand-measured part, unchanged and last', (t) => {
  const previous = ['# old', '', '## Results', 'old rows', '', KEPT_HEADING, '', '### Before and after X', '', '- 1.0 → 0.5 ms', '', ''].join('\n');
  const kept = keptPart(previous);
  t.is(kept, `${KEPT_HEADING}\n\n### Before and after X\n\n- 1.0 → 0.5 ms\n`);
  const md = renderResultsMarkdown({
    command: 'npm run bench', startedAt: '2026-01-01T00:00:00.000Z', durationS: 1, machine: [],
    rows: [], pushpin: figures([]), kongGrip: figures([]), method: ['m'], kept,
  });
  t.false(md.includes('old rows'));
  t.true(md.endsWith(kept));
  t.is(keptPart('# a file without the heading\n'), '');
  t.is(keptPart(undefined), '');
});
