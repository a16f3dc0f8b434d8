/**
 * Errors the engine raises. Each carries a stable `code` (public API: users match on it in Catch nodes) and
 * interpolation `params` for the translated message. The adapters translate with the catalog key
 * `errors.<code>`; `message` is the English fallback for logs outside Node-RED. Neither may ever hold a token,
 * secret, authorization code or PKCE verifier.
 */
export const ERROR_CODES = [
  /** invalid_grant, revoked consent, or never logged in: a person must log in again. */
  'OAUTH2_LOGIN_REQUIRED',
  /** Token endpoint answered 5xx, timed out or could not be reached, after the bounded retries. */
  'OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE',
  /** Token endpoint refused the request for another reason (invalid_client, unauthorized_client, ...). */
  'OAUTH2_TOKEN_REQUEST_REJECTED',
  /** The token endpoint answered something that is not a valid token response. */
  'OAUTH2_INVALID_TOKEN_RESPONSE',
  /** The request URL's origin is not in the connection's allowed origins: nothing was sent. */
  'OAUTH2_ORIGIN_NOT_ALLOWED',
  /** Node or connection configuration is invalid; params.field names the field. */
  'OAUTH2_INVALID_CONFIG',
  /** A message property is invalid; params.field names it. */
  'OAUTH2_INVALID_INPUT',
  /** Issuer discovery failed (unreachable, not JSON, or issuer mismatch). */
  'OAUTH2_DISCOVERY_FAILED',
  /** Login callback: state missing, unknown, used, expired, or bound to another browser session. */
  'OAUTH2_INVALID_STATE',
  /** Login callback: the `iss` parameter is missing or names another issuer (RFC 9207). */
  'OAUTH2_ISSUER_MISMATCH',
  /** The provider answered the authorization or device request with an error (params.error). */
  'OAUTH2_PROVIDER_ERROR',
  /** Device authorization: the user code expired before the user approved. */
  'OAUTH2_DEVICE_CODE_EXPIRED',
  /** Device authorization or login: the user denied access. */
  'OAUTH2_ACCESS_DENIED',
  /** The API answered with a status the node treats as failure (params.statusCode). */
  'OAUTH2_HTTP_STATUS',
  /** The API request failed on the network (reset, refused, DNS) after the bounded retries. */
  'OAUTH2_REQUEST_FAILED',
  /** The API request timed out after the bounded retries. */
  'OAUTH2_REQUEST_TIMEOUT',
  /** More redirects than the node allows. */
  'OAUTH2_TOO_MANY_REDIRECTS',
  /** The response body could not be decoded as the node was told to (for example invalid JSON). */
  'OAUTH2_RESPONSE_DECODE_FAILED',
  /** The response's decoded body passed the node's Max response size (params.limit, in MB); it was not kept. */
  'OAUTH2_RESPONSE_TOO_LARGE',
  /** The token store could not be read or written. */
  'OAUTH2_TOKEN_STORE_FAILED',
  /** The records were not found in a response (records path missing, or not a list). params.path. */
  'OAUTH2_RECORDS_NOT_FOUND',
  /** A trigger's remembered state could not be read or written. */
  'OAUTH2_TRIGGER_STATE_FAILED',
  /** A request node's held messages (kept while its connection needs a login) could not be read or written. */
  'OAUTH2_HOLD_STORE_FAILED',
  /** A record trigger's polls, cut at Max pages, stopped reading anything new of the list (params.polls). */
  'OAUTH2_TRIGGER_INCOMPLETE',
  /** An admin route was called by a page of another origin (no admin login needed for that): nothing was done. */
  'OAUTH2_CROSS_SITE_REFUSED',
] as const;

export type OAuth2ErrorCode = (typeof ERROR_CODES)[number];

export type ErrorParams = Record<string, string | number | boolean | undefined>;

/**
 * The placeholders of each code's message (`errors.<code>` in every catalog; test/unit/locales.test.ts keeps
 * the two in step). The constructor's type requires them, so no error reaches a Catch node with `__host__`
 * left in its text. `reason` is filled by translateError ("is not valid") when the message also names a field.
 */
export const ERROR_PLACEHOLDERS = {
  OAUTH2_TOKEN_ENDPOINT_UNAVAILABLE: ['reason'],
  OAUTH2_TOKEN_REQUEST_REJECTED: ['error'],
  OAUTH2_ORIGIN_NOT_ALLOWED: ['origin'],
  OAUTH2_INVALID_CONFIG: ['field', 'reason'],
  OAUTH2_INVALID_INPUT: ['field', 'reason'],
  OAUTH2_DISCOVERY_FAILED: ['reason'],
  OAUTH2_PROVIDER_ERROR: ['error', 'description'],
  OAUTH2_HTTP_STATUS: ['statusCode'],
  OAUTH2_REQUEST_FAILED: ['host', 'attempts'],
  OAUTH2_REQUEST_TIMEOUT: ['host', 'attempts'],
  OAUTH2_RECORDS_NOT_FOUND: ['path'],
  OAUTH2_RESPONSE_TOO_LARGE: ['host', 'limit'],
  OAUTH2_TRIGGER_INCOMPLETE: ['polls'],
} as const satisfies Partial<Record<OAuth2ErrorCode, readonly string[]>>;

type Placeholders<C extends OAuth2ErrorCode> = C extends keyof typeof ERROR_PLACEHOLDERS ? (typeof ERROR_PLACEHOLDERS)[C][number] : never;

/** The params a code's construction must give: its placeholders, less `reason` where translateError fills it. */
export type RequiredErrorParams<C extends OAuth2ErrorCode> = 'field' extends Placeholders<C> ? Exclude<Placeholders<C>, 'reason'> : Placeholders<C>;

/** The constructor's options for `C`: `params` with a defined value for every required placeholder. */
type OptionsArgument<C extends OAuth2ErrorCode> = C extends OAuth2ErrorCode
  ? [RequiredErrorParams<C>] extends [never]
    ? [options?: OAuth2ErrorOptions]
    : [options: OAuth2ErrorOptions & { params: ErrorParams & { [K in RequiredErrorParams<C>]: string | number | boolean } }]
  : never;

export interface OAuth2ErrorOptions {
  params?: ErrorParams;
  /** RFC 6749 / 8628 / 7009 `error` value when the server sent one. */
  oauthError?: string;
  /** HTTP status of the response that caused the error, if any. */
  statusCode?: number;
  /** Whether trying again later may succeed (network, 5xx, 429). */
  retryable?: boolean;
  /** Lower-level cause, already free of secrets. */
  cause?: unknown;
}

export class OAuth2Error<C extends OAuth2ErrorCode = OAuth2ErrorCode> extends Error {
  readonly code: C;
  readonly params: ErrorParams;
  readonly oauthError?: string;
  readonly statusCode?: number;
  readonly retryable: boolean;

  constructor(code: C, message: string, ...[given]: OptionsArgument<C>) {
    const options: OAuth2ErrorOptions = given ?? {};
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'OAuth2Error';
    this.code = code;
    this.params = options.params ?? {};
    this.oauthError = options.oauthError;
    this.statusCode = options.statusCode;
    this.retryable = options.retryable ?? false;
  }
}

export function isOAuth2Error(err: unknown, code?: OAuth2ErrorCode): err is OAuth2Error {
  return err instanceof OAuth2Error && (code === undefined || err.code === code);
}

/**
 * Where a message is in a catalog: `key`, the interpolation `params`, and `paramKeys`, the params whose text is a
 * catalog key itself (name → key), translated first. Keys are relative to a node's namespace: the server
 * translates them with RED._, the editor with its own RED._ (so a German editor reads German).
 */
export interface CatalogEntry {
  key: string;
  params: ErrorParams;
  paramKeys: Record<string, string>;
}

/**
 * An engine error's catalog entry: `errors.<code>` (or `params.messageKey`, a text of its own that says more),
 * its params, and `field` → `field.<name>`, `reason` → `reason.<name>`, `hint` → `tokenHint.<name>` as paramKeys, so the message names the field as the dialog labels it. A message naming a field
 * always has a reason to say; an error that gave none says "is invalid".
 */
export function errorCatalogEntry(err: OAuth2Error): CatalogEntry {
  const params: ErrorParams = { ...err.params };
  if (params.field !== undefined && params.reason === undefined) params.reason = 'invalidValue';
  const paramKeys: Record<string, string> = {};
  for (const [name, group] of [['field', 'field'], ['reason', 'reason'], ['hint', 'tokenHint']] as const) {
    const value = params[name];
    if (typeof value === 'string' && /^[\w.-]+$/.test(value)) paramKeys[name] = `${group}.${value}`;
  }
  // An error that knows more than its code's message (the provider's own words, a hint): a text of its own.
  const messageKey = typeof params.messageKey === 'string' && /^[\w.-]+$/.test(params.messageKey) ? params.messageKey : undefined;
  return { key: messageKey ?? `errors.${err.code}`, params, paramKeys };
}

/**
 * A catalog entry's text through a Node-RED-style `_` function; undefined when the catalog has no such key (a
 * param key it lacks keeps the param's own value).
 */
export function translateCatalogEntry(entry: CatalogEntry, translate: (key: string, params?: ErrorParams) => string): string | undefined {
  const lookup = (key: string, params?: ErrorParams): string | undefined => {
    const text = translate(key, params);
    return text && !text.endsWith(key) ? text : undefined;
  };
  const params: ErrorParams = { ...entry.params };
  for (const [name, key] of Object.entries(entry.paramKeys)) params[name] = lookup(key) ?? params[name];
  return lookup(entry.key, params);
}

/** Translates an engine error (see errorCatalogEntry); falls back to the English message. */
export function translateError(err: unknown, translate: (key: string, params?: ErrorParams) => string): string {
  if (err instanceof OAuth2Error) return translateCatalogEntry(errorCatalogEntry(err), translate) ?? err.message;
  return err instanceof Error ? err.message : String(err);
}
