import { createHash } from 'node:crypto';
import type { DeliveryMode, TriggerSettings } from './changes/types';
import { OAuth2Error } from './errors';
import { maxResponseBytes } from './http/body';
import { paginationFromConfig, validatePagination, type PaginationConfig, type PaginationSettings } from './http/pagination';

/** The record-change node's configuration as the editor saves it. */
export interface TriggerConfig extends PaginationConfig {
  url?: string;
  /** The list request's method: GET (default) or POST, for APIs that list by a query in the body. */
  method?: string;
  /** POST: the JSON body (text); `{{since}}` in a string of it is the watermark. */
  body?: string;
  interval?: number | string;
  intervalUnit?: string;
  recordsPath?: string;
  recordsPathType?: string;
  idPath?: string;
  detection?: string;
  versionPath?: string;
  emitCreated?: boolean;
  emitUpdated?: boolean;
  emitDeleted?: boolean;
  firstRun?: string;
  /** With firstRun `since`: the date and time (ISO 8601, or what Date.parse reads) the first poll sends from. */
  firstRunSince?: string;
  includePrevious?: boolean;
  batch?: boolean;
  watermarkParam?: string;
  watermarkOverlapSec?: number | string;
  watermarkFormat?: string;
  maxPages?: number | string;
  maxRemembered?: number | string;
  requestTimeout?: number | string;
  /** Max response size (MB) of each page, decoded; empty means the request pipeline's default. */
  maxResponseMb?: number | string;
  /** Watched fields: dot paths, separated by commas or new lines. */
  watchFields?: string;
  /** Remember the watched values (msg.changes with previous values, $previous in the condition). */
  watchValues?: boolean;
  /** JSONata condition on the record, with $previous: only changes for which it is true are sent. */
  condition?: string;
  /** 'at-least-once' (default, also when absent: flows saved before the setting) or 'at-most-once'. */
  delivery?: string;
}

export interface ParsedTrigger {
  url: string;
  method: 'GET' | 'POST';
  /**
   * POST: the body as parsed from its JSON; a string `{{since}}` in it (or containing it) gets the watermark
   * on each poll (listBody). Undefined: no body.
   */
  body?: unknown;
  intervalMs: number;
  records: { type: 'auto' | 'path' | 'jsonata'; path: string };
  settings: TriggerSettings;
  pagination: PaginationSettings;
  maxPages: number;
  batch: boolean;
  timeoutMs?: number;
  /** The most one page may weigh once decoded, in bytes. */
  maxResponseBytes: number;
  /** JSONata condition text, or undefined (the adapter compiles it with Node-RED's JSONata). */
  condition?: string;
  /** Digest of what the node watches: a different one means the remembered state is about something else. */
  configKey: string;
  /** When the memory is recorded against the sending (changes/types.ts); not part of configKey. */
  delivery: DeliveryMode;
}

/**
 * In a POST body, the place of the watermark ("updated since"). Also the watermark's parameter name when it
 * goes only into the body (no query parameter named): never sent as a query parameter.
 */
export const SINCE_PLACEHOLDER = '{{since}}';

/** Polling more often than this hammers the API for nothing; the editor says so too. */
export const MIN_INTERVAL_MS = 5_000;
export const MAX_INTERVAL_MS = 30 * 24 * 60 * 60 * 1000;
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

function invalid(field: string, reason: string, value?: string): OAuth2Error {
  return new OAuth2Error('OAUTH2_INVALID_CONFIG', `Invalid configuration: ${field} ${reason}`, { params: { field, reason, value } });
}

function text(value: unknown): string {
  return typeof value === 'string' ? value.trim() : '';
}

function count(value: unknown, field: string, fallback: number, min: number): number {
  if (value === undefined || value === null || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw invalid(field, 'invalidNumber', String(value));
  return n;
}

function pick<T extends string>(value: unknown, allowed: readonly T[], fallback: T, field: string): T {
  if (value === undefined || value === null || value === '') return fallback;
  if (!allowed.includes(value as T)) throw invalid(field, 'invalidValue', String(value));
  return value as T;
}

/** Validates the editor's configuration; throws OAUTH2_INVALID_CONFIG naming the first bad field. */
export function parseTriggerConfig(config: TriggerConfig): ParsedTrigger {
  const url = text(config.url);
  if (!url) throw invalid('url', 'required');
  const unit = pick(config.intervalUnit, ['s', 'm', 'h', 'd'] as const, 's', 'intervalUnit');
  const interval = Number(config.interval ?? 60);
  const intervalMs = interval * UNIT_MS[unit];
  if (!Number.isFinite(intervalMs) || intervalMs < MIN_INTERVAL_MS || intervalMs > MAX_INTERVAL_MS) {
    throw invalid('interval', 'invalidInterval', `${String(config.interval)}${unit}`);
  }
  const recordsType = pick(config.recordsPathType, ['auto', 'path', 'jsonata'] as const, 'auto', 'recordsPathType');
  const recordsPath = text(config.recordsPath);
  if (recordsType !== 'auto' && !recordsPath) throw invalid('recordsPath', 'required');

  const idPath = text(config.idPath) || 'id';
  const detectionKind = pick(config.detection, ['updatedAt', 'version', 'hash'] as const, 'updatedAt', 'detection');
  const versionPath = text(config.versionPath);
  if (detectionKind !== 'hash' && !versionPath) throw invalid('versionPath', 'required');
  const detection = detectionKind === 'hash' ? { kind: 'hash' as const } : { kind: detectionKind, path: versionPath };

  const method = pick(typeof config.method === 'string' ? config.method.toUpperCase() : config.method, ['GET', 'POST'] as const, 'GET', 'method');
  // A GET sends no body: a body left from a POST setting is ignored, as the editor hides it.
  const bodyText = method === 'POST' ? text(config.body) : '';
  let body: unknown;
  if (bodyText) {
    try {
      body = JSON.parse(bodyText) as unknown;
    } catch {
      throw invalid('body', 'invalidJson');
    }
  }
  const sinceInBody = bodyText.includes(SINCE_PLACEHOLDER);

  const watermarkParam = text(config.watermarkParam) || (sinceInBody ? SINCE_PLACEHOLDER : '');
  if (watermarkParam && detectionKind !== 'updatedAt') throw invalid(text(config.watermarkParam) ? 'watermarkParam' : 'body', 'needsUpdatedAt');
  const watermark = watermarkParam
    ? {
        param: watermarkParam,
        overlapMs: count(config.watermarkOverlapSec, 'watermarkOverlapSec', 60, 0) * 1000,
        format: pick(config.watermarkFormat, ['iso', 'epoch-s', 'epoch-ms'] as const, 'iso', 'watermarkFormat'),
      }
    : undefined;
  const emitDeleted = config.emitDeleted === true;
  // A deleted record is one missing from the list: only a full list (no watermark filter) can say that.
  if (emitDeleted && watermark) throw invalid('emitDeleted', 'needsFullList');

  const watchFields = typeof config.watchFields === 'string' ? config.watchFields.split(/[\n,]+/).map((f) => f.trim()).filter(Boolean) : [];
  for (const field of watchFields) {
    if (!/^[^.\s][^\s]*$/.test(field) || field.split('.').some((segment) => segment === '')) throw invalid('watchFields', 'invalidValue', field);
  }
  const condition = text(config.condition) || undefined;
  // A condition that reads $previous needs the previous values themselves, not their digests.
  const watch = watchFields.length
    ? { fields: [...new Set(watchFields)], keepValues: config.watchValues === true || Boolean(condition?.includes('$previous')) }
    : undefined;

  const pagination = paginationFromConfig(config);
  validatePagination(pagination);
  if (pagination.kind === 'body-cursor') {
    if (method !== 'POST') throw invalid('method', 'needsBody');
    if (body !== undefined && (body === null || typeof body !== 'object' || Array.isArray(body))) throw invalid('body', 'needsJsonObject');
  }
  const timeout = config.requestTimeout === undefined || config.requestTimeout === '' ? undefined : count(config.requestTimeout, 'requestTimeout', 0, 1);
  const delivery = pick(config.delivery, ['at-least-once', 'at-most-once'] as const, 'at-least-once', 'delivery');
  const maxResponse = maxResponseBytes(config.maxResponseMb);
  if (Number.isNaN(maxResponse)) throw invalid('maxResponseMb', 'invalidSize', String(config.maxResponseMb));
  const firstRun = pick(config.firstRun, ['remember', 'emit', 'since'] as const, 'remember', 'firstRun');
  let since: number | undefined;
  if (firstRun === 'since') {
    const sinceText = text(config.firstRunSince);
    since = sinceText ? Date.parse(sinceText) : Number.NaN;
    if (!Number.isFinite(since)) throw invalid('firstRunSince', sinceText ? 'invalidDate' : 'required', sinceText);
    // A time to compare needs versions that are times.
    if (detection.kind !== 'updatedAt') throw invalid('firstRun', 'needsUpdatedAt');
  }
  const settings: TriggerSettings = {
    idPath,
    detection,
    events: { created: config.emitCreated !== false, updated: config.emitUpdated !== false, deleted: emitDeleted },
    emitExistingOnFirstPoll: firstRun === 'emit',
    ...(since !== undefined ? { emitSinceOnFirstPoll: since } : {}),
    includePrevious: config.includePrevious === true,
    maxRemembered: count(config.maxRemembered, 'maxRemembered', 100_000, 1),
    watermark,
    watch,
  };
  // What is watched: the list (URL with its query, records path, pagination) and what a version means.
  const configKey = createHash('sha256')
    .update(
      JSON.stringify({
        url,
        // A GET keeps the key it had before the method setting existed: its memory stays its own.
        ...(method === 'POST' ? { method, body: bodyText } : {}),
        records: [recordsType, recordsPath],
        idPath,
        detection,
        watermark: watermark?.param ?? '',
        ...(watch ? { watch } : {}),
      }),
    )
    .digest('base64url')
    .slice(0, 22);
  return {
    url,
    method,
    ...(body !== undefined ? { body } : {}),
    intervalMs,
    records: { type: recordsType, path: recordsPath },
    settings,
    pagination,
    maxPages: count(config.maxPages, 'maxPages', 100, 1),
    batch: config.batch === true,
    timeoutMs: timeout,
    maxResponseBytes: maxResponse,
    condition,
    configKey,
    delivery,
  };
}

/**
 * The POST body of one poll: the configured body with every `{{since}}` in its strings replaced by the
 * watermark as the query would carry it (`since`, formatted), or, with no watermark yet (a first poll: the
 * whole list), by the earliest time in that format. A string that is `{{since}}` alone becomes a number for
 * the epoch formats, so a filter compares numbers with numbers.
 */
export function listBody(body: unknown, since: string | undefined, format: 'iso' | 'epoch-s' | 'epoch-ms' = 'iso'): unknown {
  const value = since ?? (format === 'iso' ? new Date(0).toISOString() : '0');
  const whole: string | number = format === 'iso' ? value : Number(value);
  const walk = (node: unknown): unknown => {
    if (typeof node === 'string') {
      if (!node.includes(SINCE_PLACEHOLDER)) return node;
      return node === SINCE_PLACEHOLDER ? whole : node.split(SINCE_PLACEHOLDER).join(value);
    }
    if (Array.isArray(node)) return node.map(walk);
    if (node && typeof node === 'object') return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, walk(v)]));
    return node;
  };
  return walk(body);
}
