import { closest, distance } from 'fastest-levenshtein';

// "Did you mean": the known name nearest to a mistyped one, when it is near enough to be the
// likely intent (a typo or two, or a third of the name), else nothing.

export function suggest(input: string, known: readonly string[]): string | undefined {
  if (known.length === 0 || input === '') return undefined;
  const best = closest(input, known as string[]);
  const allowed = Math.max(2, Math.floor(Math.max(input.length, best.length) / 3));
  return distance(input, best) <= allowed ? best : undefined;
}

/** " (did you mean X?)" or "", for appending to a message. */
export function didYouMean(input: string, known: readonly string[]): string {
  const s = suggest(input, known);
  return s === undefined ? '' : ` (did you mean ${s}?)`;
}
