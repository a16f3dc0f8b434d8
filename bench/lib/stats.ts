/** Small statistics and formatting helpers for the benchmark report. */

export function median(values: readonly number[]): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function min(values: readonly number[]): number {
  return values.length ? Math.min(...values) : NaN;
}

export function max(values: readonly number[]): number {
  return values.length ? Math.max(...values) : NaN;
}

/** A number with a fixed number of decimals and thousands separators, or "n/a". */
export function fmt(value: number, decimals = 0): string {
  if (!Number.isFinite(value)) return 'n/a';
  return value.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

export function ratio(value: number, decimals = 2): string {
  return Number.isFinite(value) ? `${value.toFixed(decimals)}×` : 'n/a';
}

export function mib(bytes: number, decimals = 1): string {
  return `${fmt(bytes / 1024 / 1024, decimals)} MiB`;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${fmt(n / 1024, 1)} KiB`;
  return mib(n);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resident and peak resident memory of a process, in bytes (Linux /proc). */
export function processMemory(pid: number | 'self'): { rss: number; peak: number } {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- tiny sync read, avoids an import cycle in workers
  const fs = require('node:fs') as typeof import('node:fs');
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { rss: kib('VmRSS') * 1024, peak: kib('VmHWM') * 1024 };
}

/** One row of the summary table. */
export interface Row {
  section: string;
  measure: string;
  ours: string;
  other: string;
  ratio: string;
  note?: string;
}
