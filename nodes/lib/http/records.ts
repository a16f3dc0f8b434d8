/**
 * Where the list of records is in a response body. Shared by the request node's pagination and the record
 * trigger: both must see the same records in the same body.
 */

import { OAuth2Error } from '../errors';

/** The properties tried, in order, when no records path is set and the body is not itself a list. */
export const DEFAULT_RECORD_PROPERTIES = ['data', 'items', 'results', 'records', 'value'] as const;

/** Names a path may never step through: they reach the prototype chain, not the data. */
export const FORBIDDEN_SEGMENTS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Finds the list of records in a response body: `path` (dot path, '' = default) → that property; default: the
 * body itself when it is an array, else the first of data, items, results, records, value that is an array.
 * Returns undefined when not found (the caller raises OAUTH2_RECORDS_NOT_FOUND with params.path).
 */
export function findRecords(body: unknown, path?: string): unknown[] | undefined {
  const wanted = typeof path === 'string' ? path.trim() : '';
  if (wanted !== '') {
    const found = readPath(body, wanted);
    return Array.isArray(found) ? found : undefined;
  }
  if (Array.isArray(body)) return body;
  if (!isObject(body)) return undefined;
  for (const name of DEFAULT_RECORD_PROPERTIES) {
    const value = ownValue(body, name);
    if (Array.isArray(value)) return value;
  }
  return undefined;
}

/**
 * Dot-path read (a.b.0.c), no prototype access (__proto__, constructor, prototype refused). Only own properties
 * of objects and arrays are read, so `length` of a string or `toString` of an object are not found either.
 * A key that itself holds dots is found too, the longest matching key first: `@odata.nextLink` (Microsoft Graph)
 * reads that property. '' is the value itself; an empty segment (`a..b`, a trailing dot) finds nothing.
 */
export function readPath(value: unknown, path: string): unknown {
  if (typeof path !== 'string') return undefined;
  const text = path.trim();
  if (text === '') return value;
  const segments = text.split('.');
  if (segments.some((segment) => segment === '' || FORBIDDEN_SEGMENTS.has(segment))) return undefined;
  let current: unknown = value;
  let i = 0;
  while (i < segments.length) {
    if (!isObject(current)) return undefined;
    let next: unknown;
    let used = 0;
    for (let k = segments.length - i; k >= 1; k -= 1) {
      const key = k === 1 ? segments[i] : segments.slice(i, i + k).join('.');
      if (Object.prototype.hasOwnProperty.call(current, key)) {
        next = (current as Record<string, unknown>)[key];
        used = k;
        break;
      }
    }
    if (used === 0 || next === undefined) return undefined;
    current = next;
    i += used;
  }
  return current;
}

function isObject(value: unknown): value is object {
  return value !== null && typeof value === 'object';
}

function ownValue(target: object, name: string): unknown {
  return Object.prototype.hasOwnProperty.call(target, name) ? (target as Record<string, unknown>)[name] : undefined;
}

/**
 * OAUTH2_RECORDS_NOT_FOUND for a body with no list of records: names the records path, or the properties the
 * automatic lookup tried (the request node and the trigger say it alike).
 */
export function recordsNotFound(path?: string): OAuth2Error {
  const wanted = typeof path === 'string' ? path.trim() : '';
  return new OAuth2Error('OAUTH2_RECORDS_NOT_FOUND', 'No list of records was found in the response', {
    params: { path: wanted || DEFAULT_RECORD_PROPERTIES.join(', ') },
  });
}
