import { OAuth2Error } from './errors';
import { RESERVED_AUTHORIZE_PARAMS, RESERVED_TOKEN_PARAMS } from './oauth/reserved-params';
import type { ProxySettings } from './http/proxy';
import { isLoopbackHost } from './url-policy';
import { REVOCATION_STYLES } from './oauth/revocation';
import { parseLookup, parseTokenPath, parseValueSources, type ProviderBehaviour } from './connection-values';
import type { ClientAuthMethod, ClientSettings, CredentialTarget, GrantType, ProviderMetadata, RevocationStyle } from './types';

/** The connection node's configuration as the editor saves it (flows.json). Strings unless noted. */
export interface ConnectionConfig {
  grantType?: string;
  issuer?: string;
  authorizationEndpoint?: string;
  tokenEndpoint?: string;
  revocationEndpoint?: string;
  revocationStyle?: string;
  deviceAuthorizationEndpoint?: string;
  issParameterSupported?: boolean | string;
  clientId?: string;
  authMethod?: string;
  scopes?: string;
  resources?: string;
  authorizeParams?: unknown;
  tokenParams?: unknown;
  apiBaseUrl?: string;
  allowedOrigins?: string;
  expiredStatuses?: string;
  /**
   * A JSONata condition over `{statusCode, headers, payload}` of an API answer that also means "token expired"
   * (`payload.ok = false and payload.error = 'token_expired'`); the adapter compiles it (Connection's
   * expiredWhen option).
   */
  expiredWhen?: string;
  refreshSkewSec?: number | string;
  redirectUri?: string;
  /** Id of a Node-RED `http proxy` config node; the adapter resolves it into ConnectionSettings.proxy. */
  proxy?: string;
  /** The provider preset the dialog filled the fields from (providers/catalogue.json); empty for Custom. */
  provider?: string;
  /** `' '` (default) or `','`: how scopes are joined in requests. */
  scopeSeparator?: string;
  /** `S256` (default) or `off` (the provider refuses PKCE parameters). */
  pkce?: string;
  /** Dot path of the token response where the tokens sit (`authed_user`). */
  tokenPath?: string;
  /** Token-response fields kept as connection values: `[{from, as, setsApiBaseUrl, pattern}]`. */
  tokenValues?: unknown;
  /** Login-callback query parameters kept as connection values, same shape. */
  callbackValues?: unknown;
  /** A GET after each login whose answer's first item gives a connection value (and maybe a header). */
  lookupUrl?: string;
  lookupPick?: string;
  lookupAs?: string;
  lookupHeader?: string;
}

/** Validated settings the engine works with. */
export interface ConnectionSettings {
  grant: GrantType;
  issuer?: string;
  /** Endpoints typed or discovered in the editor; `tokenEndpoint` empty means "discover at run time". */
  metadata: Partial<ProviderMetadata> & { authorizationResponseIssParameterSupported: boolean };
  client: ClientSettings;
  apiBaseUrl?: string;
  allowedOrigins: string[];
  expiredStatuses: number[];
  refreshSkewMs: number;
  redirectUri?: string;
  /**
   * The outbound proxy of every call of the connection (http/proxy.ts): the adapter fills it from the node's
   * `http proxy` config node; undefined means the environment's.
   */
  proxy?: ProxySettings;
  /** The provider's deviations from RFC 6749 this connection is set up for (connection-values.ts). */
  behaviour: ProviderBehaviour;
  /** The preset the fields came from, for display; never read to decide anything. */
  provider?: string;
}

const GRANTS: readonly GrantType[] = ['authorization_code', 'client_credentials', 'device_code'];
const AUTH_METHODS: readonly ClientAuthMethod[] = ['client_secret_basic', 'client_secret_post', 'none'];

function invalid(field: string, reason: string, value?: string): OAuth2Error {
  return new OAuth2Error('OAUTH2_INVALID_CONFIG', `Invalid configuration: ${field} ${reason}`, {
    params: { field, reason, value },
  });
}

/**
 * Parses an endpoint URL: https, or http on a loopback host only (RFC 6749 section 3.1 requires TLS for
 * every endpoint that carries credentials; loopback is where development servers live).
 */
export function parseEndpointUrl(value: string, field: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid(field, 'invalidUrl', value);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw invalid(field, 'invalidUrl', value);
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) throw invalid(field, 'insecureUrl', value);
  if (url.username || url.password) throw invalid(field, 'invalidUrl', value);
  return url;
}

function optionalEndpoint(value: unknown, field: string): string | undefined {
  const text = typeof value === 'string' ? value.trim() : '';
  return text ? parseEndpointUrl(text, field).href : undefined;
}

/** Splits a whitespace-, comma- or newline-separated list. */
export function splitList(value: unknown): string[] {
  return typeof value === 'string' ? value.split(/[\s,]+/).filter(Boolean) : [];
}

function parseParamList(value: unknown, field: string, reserved: ReadonlySet<string>): Record<string, string> {
  if (value === undefined || value === null || value === '') return {};
  if (!Array.isArray(value)) throw invalid(field, 'invalidParams');
  const out: Record<string, string> = {};
  for (const entry of value as unknown[]) {
    const k = (entry as { k?: unknown } | null)?.k;
    const v = (entry as { v?: unknown } | null)?.v;
    if (typeof k !== 'string' || !k.trim()) throw invalid(field, 'invalidParams');
    if (reserved.has(k.trim().toLowerCase())) throw invalid(field, 'notPermitted', k.trim());
    out[k.trim()] = v === undefined || v === null ? '' : String(v);
  }
  return out;
}

export function parseExpiredStatuses(value: unknown): number[] {
  const text = value === undefined || value === null || value === '' ? '401' : String(value);
  const statuses = splitList(text).map((s) => Number(s));
  if (!statuses.length || statuses.some((s) => !Number.isInteger(s) || s < 400 || s > 599)) {
    throw invalid('expiredStatuses', 'invalidStatus', text);
  }
  return [...new Set(statuses)];
}

/**
 * Validates the editor's configuration; throws OAUTH2_INVALID_CONFIG naming the first bad field.
 * `secretRequired: false` (the deployed node) accepts a client-credentials connection with no secret yet: an
 * imported flow never carries one, and the token request then fails with the same error instead.
 */
export function parseConnectionConfig(
  config: ConnectionConfig,
  clientSecret?: string,
  options: { secretRequired?: boolean } = {},
): ConnectionSettings {
  const grant = (config.grantType || 'authorization_code') as GrantType;
  if (!GRANTS.includes(grant)) throw invalid('grantType', 'invalidValue', String(config.grantType));
  const authMethod = (config.authMethod || 'client_secret_basic') as ClientAuthMethod;
  if (!AUTH_METHODS.includes(authMethod)) throw invalid('authMethod', 'invalidValue', String(config.authMethod));

  const clientId = typeof config.clientId === 'string' ? config.clientId.trim() : '';
  if (!clientId) throw invalid('clientId', 'required');

  const issuer = typeof config.issuer === 'string' && config.issuer.trim() ? config.issuer.trim() : undefined;
  if (issuer) parseEndpointUrl(issuer, 'issuer');
  const tokenEndpoint = optionalEndpoint(config.tokenEndpoint, 'tokenEndpoint');
  if (!tokenEndpoint && !issuer) throw invalid('tokenEndpoint', 'required');
  const authorizationEndpoint = optionalEndpoint(config.authorizationEndpoint, 'authorizationEndpoint');
  const deviceAuthorizationEndpoint = optionalEndpoint(config.deviceAuthorizationEndpoint, 'deviceAuthorizationEndpoint');
  if (tokenEndpoint && grant === 'authorization_code' && !authorizationEndpoint) {
    throw invalid('authorizationEndpoint', 'required');
  }
  if (tokenEndpoint && grant === 'device_code' && !deviceAuthorizationEndpoint) {
    throw invalid('deviceAuthorizationEndpoint', 'required');
  }

  const skewText = config.refreshSkewSec === undefined || config.refreshSkewSec === '' ? '60' : String(config.refreshSkewSec);
  const skew = Number(skewText);
  if (!Number.isFinite(skew) || skew < 0) throw invalid('refreshSkewSec', 'invalidNumber', skewText);

  const apiBaseUrl = typeof config.apiBaseUrl === 'string' && config.apiBaseUrl.trim() ? config.apiBaseUrl.trim() : undefined;
  if (apiBaseUrl) {
    let base: URL;
    try {
      base = new URL(apiBaseUrl);
    } catch {
      throw invalid('apiBaseUrl', 'invalidUrl', apiBaseUrl);
    }
    if ((base.protocol !== 'https:' && base.protocol !== 'http:') || base.username || base.password) {
      throw invalid('apiBaseUrl', 'invalidUrl', apiBaseUrl);
    }
  }
  const redirectUri = typeof config.redirectUri === 'string' && config.redirectUri.trim() ? config.redirectUri.trim() : undefined;
  if (redirectUri) {
    try {
      const parsed = new URL(redirectUri);
      if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new Error('scheme');
    } catch {
      throw invalid('redirectUri', 'invalidUrl', redirectUri);
    }
  }

  const revocationStyle = (config.revocationStyle || 'rfc7009') as RevocationStyle;
  if (!REVOCATION_STYLES.includes(revocationStyle)) throw invalid('revocationStyle', 'invalidValue', String(config.revocationStyle));

  const scopeSeparator = config.scopeSeparator === undefined || config.scopeSeparator === '' || config.scopeSeparator === ' ' ? ' ' : config.scopeSeparator;
  if (scopeSeparator !== ' ' && scopeSeparator !== ',') throw invalid('scopeSeparator', 'invalidValue', String(config.scopeSeparator));
  const pkce = config.pkce === undefined || config.pkce === '' ? 'S256' : config.pkce;
  if (pkce !== 'S256' && pkce !== 'off') throw invalid('pkce', 'invalidValue', String(config.pkce));
  const behaviour: ProviderBehaviour = {
    tokenPath: parseTokenPath(config.tokenPath),
    tokenValues: parseValueSources(config.tokenValues, 'tokenValues'),
    callbackValues: parseValueSources(config.callbackValues, 'callbackValues'),
    lookup: parseLookup(config as Record<string, unknown>, parseEndpointUrl),
  };
  const provider = typeof config.provider === 'string' && /^[a-z0-9-]{1,64}$/.test(config.provider) ? config.provider : undefined;

  const secret = clientSecret && clientSecret.length ? clientSecret : undefined;
  if (authMethod !== 'none' && !secret && grant === 'client_credentials' && options.secretRequired !== false) {
    throw invalid('clientSecret', 'required');
  }

  return {
    grant,
    issuer,
    metadata: {
      issuer,
      authorizationEndpoint,
      tokenEndpoint,
      revocationEndpoint: optionalEndpoint(config.revocationEndpoint, 'revocationEndpoint'),
      revocationStyle,
      deviceAuthorizationEndpoint,
      authorizationResponseIssParameterSupported:
        config.issParameterSupported === true || config.issParameterSupported === 'true',
    },
    client: {
      clientId,
      clientSecret: secret,
      authMethod,
      scopes: splitList(config.scopes),
      resources: splitList(config.resources),
      extraAuthorizeParams: parseParamList(config.authorizeParams, 'authorizeParams', RESERVED_AUTHORIZE_PARAMS),
      extraTokenParams: parseParamList(config.tokenParams, 'tokenParams', RESERVED_TOKEN_PARAMS),
      scopeSeparator,
      pkce,
    },
    apiBaseUrl,
    allowedOrigins: splitList(config.allowedOrigins),
    expiredStatuses: parseExpiredStatuses(config.expiredStatuses),
    refreshSkewMs: skew * 1000,
    redirectUri,
    behaviour,
    ...(provider ? { provider } : {}),
  };
}

/** Where these settings send the client secret and tokens (see CredentialTarget). */
export function credentialTarget(settings: ConnectionSettings): CredentialTarget {
  const { metadata, client } = settings;
  return {
    clientId: client.clientId,
    authMethod: client.authMethod,
    issuer: settings.issuer,
    authorizationEndpoint: metadata.authorizationEndpoint,
    tokenEndpoint: metadata.tokenEndpoint,
    revocationEndpoint: metadata.revocationEndpoint,
    deviceAuthorizationEndpoint: metadata.deviceAuthorizationEndpoint,
  };
}

/**
 * Where settings really send the client secret and tokens once their endpoints are known: the endpoints of
 * `metadata` (what discovery found, for settings that name only an issuer; the configured ones otherwise).
 */
export function resolvedCredentialTarget(
  settings: ConnectionSettings,
  metadata: Pick<ProviderMetadata, 'authorizationEndpoint' | 'tokenEndpoint' | 'revocationEndpoint' | 'deviceAuthorizationEndpoint'>,
): CredentialTarget {
  return {
    ...credentialTarget(settings),
    authorizationEndpoint: metadata.authorizationEndpoint,
    tokenEndpoint: metadata.tokenEndpoint,
    revocationEndpoint: metadata.revocationEndpoint,
    deviceAuthorizationEndpoint: metadata.deviceAuthorizationEndpoint,
  };
}

const TARGET_FIELDS: readonly (keyof CredentialTarget)[] = [
  'clientId', 'authMethod', 'issuer', 'authorizationEndpoint', 'tokenEndpoint', 'revocationEndpoint', 'deviceAuthorizationEndpoint',
];

/** Whether two targets send credentials to the same servers in the same way: every field equal. */
export function sameCredentialTarget(a: CredentialTarget, b: CredentialTarget): boolean {
  return TARGET_FIELDS.every((field) => (a[field] || undefined) === (b[field] || undefined));
}
