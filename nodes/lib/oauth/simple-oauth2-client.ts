/**
 * The TokenEndpointClient on top of simple-oauth2, with its gaps filled (see CONVENTIONS.md):
 * PKCE verifier passthrough, previous refresh token kept, expiry without expires_in (normalizeTokenResponse),
 * repeated `resource`, `none` client auth, device grant and RFC 7009 revocation (our own form POSTs), and its
 * credential-logging debug output silenced. No retrying here: the token manager owns retry policy.
 */
// Must come before simple-oauth2 is loaded and used: it disables simple-oauth2's secret-logging debug output.
import { silenceSimpleOAuth2Debug } from '../silence-debug';
import type { Agent as HttpAgent, IncomingMessage } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import { AuthorizationCode, ClientCredentials, type ModuleOptions } from 'simple-oauth2';
import { OAuth2Error, isOAuth2Error } from '../errors';
import { sharedAgents } from '../http/agents';
import { NO_BEHAVIOUR, type ProviderBehaviour } from '../connection-values';
import type { ClientSettings, ProviderMetadata, TokenSet } from '../types';
import { errorInSuccessBody, mapEndpointFailure, mapRefusal, type EndpointContext, type EndpointFailure } from './error-mapping';
import { pollDeviceTokenOnce, requestDeviceAuthorization } from './device-authorization';
import type { TransportOptions } from './form-post';
import { revokeTokens } from './revocation';
import { decodeJwtPayload, normalizeTokenResponse } from './token-response';
import type { DeviceAuthorization, DevicePollPending, TokenEndpointClient } from './token-endpoint';
import { RESERVED_TOKEN_PARAMS } from './reserved-params';

silenceSimpleOAuth2Debug();

export interface TokenEndpointClientConfig {
  metadata: ProviderMetadata;
  client: ClientSettings;
  /** Per request. Default 30 s. */
  timeoutMs?: number;
  /** Access-token lifetime assumed when neither expires_in nor a JWT exp says. Default 3600 s. */
  defaultLifetimeSec?: number;
  httpAgent?: HttpAgent;
  httpsAgent?: HttpsAgent;
  /** Clock, injectable for tests. */
  now?: () => number;
  /** Where the tokens sit in the answers and which of its fields become connection values. */
  behaviour?: ProviderBehaviour;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_LIFETIME_SEC = 3600;
const MAX_RESPONSE_BYTES = 1024 * 1024;

/** simple-oauth2 validates id and secret against this (RFC 6749 VSCHAR); its error would quote the secret. */
const VSCHAR = /^[\x20-\x7e]*$/;

/** The Boom error shape @hapi/wreck throws (simple-oauth2's HTTP client). */
interface BoomLike {
  isBoom: true;
  output: { statusCode: number };
  data?: { isResponseError?: boolean; res?: IncomingMessage; payload?: unknown; code?: unknown } | null;
}

function isBoom(err: unknown): err is BoomLike {
  return typeof err === 'object' && err !== null && (err as { isBoom?: unknown }).isBoom === true;
}

/**
 * A body Wreck could not read as JSON (we ask it to try whatever the content type: see wreckOptions), as the
 * object a form-encoded answer stands for (GitHub answers `error=bad_refresh_token&...` unless asked for JSON),
 * or undefined when it is neither.
 */
function formBody(payload: unknown, res: IncomingMessage): Record<string, string> | undefined {
  if (!Buffer.isBuffer(payload) || payload.length === 0 || payload.length > MAX_RESPONSE_BYTES) return undefined;
  const type = String(res.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  const text = payload.toString('utf8').trim();
  // A form body is one line of name=value pairs; an HTML page or a sentence is not.
  if (type !== 'application/x-www-form-urlencoded' && !/^[\w.~%+-]+=[^\s<>]*(&[\w.~%+-]+=[^\s<>]*)*$/.test(text)) return undefined;
  const fields: Record<string, string> = {};
  for (const [name, value] of new URLSearchParams(text)) fields[name] ??= value;
  return Object.keys(fields).length > 0 ? fields : undefined;
}

function headerValue(res: IncomingMessage, name: string): string | undefined {
  const value = res.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Reduces a Wreck error to an EndpointFailure; the error itself references the request and is dropped. */
function wreckFailure(err: BoomLike): EndpointFailure {
  const res = err.data?.res;
  // Reading the body failed after the headers arrived: Wreck's "Payload stream closed prematurely" / "Payload
  // stream error" (Boom 500) and its read timeout (Boom 408). A transfer cut mid-body is a network failure
  // (retryable), not a bad token response; only a parse failure (502: the body is not JSON) is the latter.
  if (res && !err.data?.isResponseError) {
    if (err.output.statusCode === 500) return { kind: 'network', code: 'ECONNRESET' };
    if (err.output.statusCode === 408) return { kind: 'timeout' };
  }
  if (res && typeof res.statusCode === 'number') {
    const payload = err.data?.payload;
    const json = err.data?.isResponseError && typeof payload === 'object' && payload !== null && !Buffer.isBuffer(payload) ? payload : undefined;
    return { kind: 'http', status: res.statusCode, body: json ?? formBody(payload, res), retryAfter: headerValue(res, 'retry-after') };
  }
  if (err.output.statusCode === 504) return { kind: 'timeout' };
  // Wreck boomifies the socket's own error ("Client request error"): its code (ECONNREFUSED, ECONNRESET...) is on
  // the error itself. It tells a request that never left (refused) from one whose answer was lost (reset).
  const code = err.data?.code ?? (err as { code?: unknown }).code;
  return { kind: 'network', code: typeof code === 'string' ? code : undefined };
}

function validateConfig(config: TokenEndpointClientConfig): void {
  const { client, metadata } = config;
  try {
    new URL(metadata.tokenEndpoint);
  } catch {
    throw new OAuth2Error('OAUTH2_INVALID_CONFIG', 'The token endpoint is not a valid URL', { params: { field: 'tokenEndpoint', reason: 'invalidUrl' } });
  }
  if (!client.clientId || !VSCHAR.test(client.clientId)) {
    throw new OAuth2Error('OAUTH2_INVALID_CONFIG', 'The client id must be printable ASCII', { params: { field: 'clientId', reason: 'notAscii' } });
  }
  if (client.authMethod !== 'none' && (!client.clientSecret || !VSCHAR.test(client.clientSecret))) {
    throw new OAuth2Error('OAUTH2_INVALID_CONFIG', 'The client secret is missing or not printable ASCII', { params: { field: 'clientSecret', reason: 'missingOrNotAscii' } });
  }
}

/** simple-oauth2 options for this client. */
function moduleOptions(config: TokenEndpointClientConfig): ModuleOptions {
  const { client } = config;
  const url = new URL(config.metadata.tokenEndpoint);
  const auth = { tokenHost: url.origin, tokenPath: `${url.pathname}${url.search}` };
  if (client.authMethod === 'none') {
    // simple-oauth2 always writes both id and secret in body mode. Pointing the secret parameter at client_id
    // with the id as its value leaves exactly `client_id=<id>` in the body: a public client, no secret.
    return {
      client: { id: client.clientId, secret: client.clientId, idParamName: 'client_id', secretParamName: 'client_id' },
      auth,
      options: { authorizationMethod: 'body' },
    };
  }
  return {
    client: { id: client.clientId, secret: client.clientSecret ?? '' },
    auth,
    options: { authorizationMethod: client.authMethod === 'client_secret_basic' ? 'header' : 'body', credentialsEncodingMode: 'strict' },
  };
}

export function createTokenEndpointClient(config: TokenEndpointClientConfig): TokenEndpointClient {
  validateConfig(config);
  const { metadata, client } = config;
  const now = config.now ?? Date.now;
  const timeoutMs = config.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const defaultLifetimeSec = config.defaultLifetimeSec ?? DEFAULT_LIFETIME_SEC;
  const behaviour = config.behaviour ?? NO_BEHAVIOUR;
  const scopeSeparator = client.scopeSeparator ?? ' ';
  const tokenHost = new URL(metadata.tokenEndpoint).host;
  const isHttps = new URL(metadata.tokenEndpoint).protocol === 'https:';
  // No agents given (a dialog's login): the shared ones, never Node's global agents (see sharedAgents).
  const httpAgent = config.httpAgent ?? sharedAgents().http;
  const httpsAgent = config.httpsAgent ?? sharedAgents().https;
  const transport: TransportOptions = { timeoutMs, httpAgent, httpsAgent };

  let authorizationCode: AuthorizationCode;
  let clientCredentialsGrant: ClientCredentials;
  try {
    const options = moduleOptions(config);
    authorizationCode = new AuthorizationCode(options);
    clientCredentialsGrant = new ClientCredentials(options);
  } catch {
    // The validation error text can quote the secret: report the field only.
    throw new OAuth2Error('OAUTH2_INVALID_CONFIG', 'The OAuth2 client settings are invalid', { params: { field: 'client', reason: 'invalidValue' } });
  }

  /**
   * Wreck options per request. simple-oauth2 deep-clones these (Hoek.clone), which would copy the agent and
   * break its socket pool; an accessor property is copied as an accessor, so Wreck gets the real agent.
   */
  function wreckOptions(): Record<string, unknown> {
    // `json: 'force'`: every body is tried as JSON whatever its content type, and one that is not JSON comes back
    // whole (in the parse error) instead of being refused unread, so a form-encoded error can be read.
    const options: Record<string, unknown> = { timeout: timeoutMs, maxBytes: MAX_RESPONSE_BYTES, json: 'force' };
    const agent = isHttps ? httpsAgent : httpAgent;
    Object.defineProperty(options, 'agent', { get: () => agent, enumerable: true });
    return options;
  }

  /** Extra token parameters and resources, under the parameters of the grant itself. */
  function commonParams(): Record<string, string | string[]> {
    const params: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(client.extraTokenParams)) {
      if (!RESERVED_TOKEN_PARAMS.has(name)) params[name] = value;
    }
    // simple-oauth2 form-encodes with querystring, which writes an array as repeated parameters (RFC 8707).
    if (client.resources.length > 0) params.resource = [...client.resources];
    return params;
  }

  /**
   * One token request. A 2xx that names an error instead of a token (GitHub's and Slack's refusals) is a refusal
   * like a 4xx; a form-encoded 2xx token answer is taken as it is. `refresh`: a refusal means login required.
   */
  async function tokenRequest(
    request: () => Promise<{ token: Record<string, unknown> }>,
    secrets: (string | undefined)[],
    refresh = false,
  ): Promise<Record<string, unknown>> {
    const ctx: EndpointContext = { host: tokenHost, endpoint: 'token', secrets: [client.clientSecret, ...secrets], refresh };
    let body: Record<string, unknown>;
    // simple-oauth2 does not say the status of an answer it takes: a 2xx, said as 200.
    let status = 200;
    try {
      body = (await request()).token;
    } catch (err) {
      if (isOAuth2Error(err)) throw err;
      if (!isBoom(err)) {
        // simple-oauth2 asserts a non-empty body before we see it; anything else non-HTTP lands here too.
        throw new OAuth2Error('OAUTH2_INVALID_TOKEN_RESPONSE', `The token endpoint at ${tokenHost} answered an empty or unusable body`, {
          params: { host: tokenHost, field: 'body' },
        });
      }
      const failure = wreckFailure(err);
      if (failure.kind !== 'http' || failure.status >= 400) throw mapEndpointFailure(failure, ctx);
      if (failure.body === undefined) {
        throw new OAuth2Error('OAUTH2_INVALID_TOKEN_RESPONSE', `The token endpoint at ${tokenHost} answered HTTP ${failure.status} without a JSON token response`, {
          params: { host: tokenHost, field: 'body', status: failure.status },
          statusCode: failure.status,
        });
      }
      body = failure.body as Record<string, unknown>;
      status = failure.status;
    }
    if (errorInSuccessBody(body)) throw mapRefusal(status, body, ctx);
    return body;
  }

  /**
   * simple-oauth2 adds expires_at (a Date) to what the server sent: from expires_in, which we read ourselves, or
   * from the server's own expires_at, read as epoch seconds or an ISO date. That one is given back as epoch ms
   * (a server's epoch milliseconds, read as seconds, land past the year 50000 and are scaled back); a numeric
   * string it could not read is lost, and the lifetime is then decided as when none is given.
   */
  function raw(token: Record<string, unknown>): Record<string, unknown> {
    const { expires_at: parsed, ...rest } = token;
    if (rest.expires_in === undefined && parsed instanceof Date && Number.isFinite(parsed.getTime())) {
      const ms = parsed.getTime();
      rest.expires_at = ms > 1e14 ? ms / 1000 : ms;
    }
    return rest;
  }

  /** `sentAt`: when the token request left. A token's life counts from then, not from its arrival. */
  function normalize(body: unknown, sentAt: number, requestedScopes: string[], previous?: TokenSet, userGrant = true): TokenSet {
    return normalizeTokenResponse(body, {
      now: sentAt,
      defaultLifetimeSec,
      requestedScopes,
      previous,
      scopeSeparator,
      tokenPath: behaviour.tokenPath,
      valueSources: behaviour.tokenValues,
      lifetimeUnknownMeansUntilRefused: userGrant,
    });
  }

  return {
    async exchangeCode({ code, codeVerifier, redirectUri, nonce }) {
      // Without PKCE (a provider that refuses it) the exchange carries no verifier either.
      const params = { ...commonParams(), code, redirect_uri: redirectUri, ...(client.pkce === 'off' ? {} : { code_verifier: codeVerifier }) };
      const sentAt = now();
      const body = await tokenRequest(() => authorizationCode.getToken(params, wreckOptions()), [code, codeVerifier]);
      const tokens = normalize(raw(body), sentAt, client.scopes);
      if (nonce !== undefined && tokens.idToken) {
        // Replay protection for the id_token (OIDC Core 3.1.3.7 step 11). Signature checks are unnecessary
        // for a token received directly from the token endpoint over TLS (same section, step 6).
        if (decodeJwtPayload(tokens.idToken)?.nonce !== nonce) {
          throw new OAuth2Error('OAUTH2_INVALID_TOKEN_RESPONSE', `The id_token from ${tokenHost} does not carry the login's nonce`, {
            params: { host: tokenHost, field: 'id_token' },
          });
        }
      }
      return tokens;
    },

    async refresh(previous) {
      if (!previous.refreshToken) {
        throw new OAuth2Error('OAUTH2_LOGIN_REQUIRED', 'There is no refresh token: log in again', { params: { field: 'refreshToken' } });
      }
      const current = authorizationCode.createToken({ access_token: previous.accessToken, refresh_token: previous.refreshToken });
      const params = commonParams();
      const sentAt = now();
      const body = await tokenRequest(() => current.refresh(params, wreckOptions()), [previous.refreshToken, previous.accessToken], true);
      // simple-oauth2 fills a missing refresh_token with undefined (a bug: it reads this.refresh_token), so
      // drop it and let normalizeTokenResponse keep the previous one, as RFC 6749 section 6 says.
      const response = raw(body);
      if (response.refresh_token === undefined) delete response.refresh_token;
      return normalize(response, sentAt, previous.scopes, previous);
    },

    async clientCredentials() {
      const params: Record<string, string | string[]> = { ...commonParams() };
      if (client.scopes.length > 0) params.scope = client.scopes.join(scopeSeparator);
      const sentAt = now();
      const body = await tokenRequest(() => clientCredentialsGrant.getToken(params, wreckOptions()), []);
      return normalize(raw(body), sentAt, client.scopes, undefined, false);
    },

    async startDeviceAuthorization(): Promise<DeviceAuthorization> {
      if (!metadata.deviceAuthorizationEndpoint) {
        throw new OAuth2Error('OAUTH2_INVALID_CONFIG', 'The provider has no device authorization endpoint', {
          params: { field: 'deviceAuthorizationEndpoint', reason: 'required' },
        });
      }
      return requestDeviceAuthorization({ endpoint: metadata.deviceAuthorizationEndpoint, client, transport, now: now() });
    },

    async pollDeviceToken(deviceCode: string): Promise<TokenSet | DevicePollPending> {
      const sentAt = now();
      const result = await pollDeviceTokenOnce({ tokenEndpoint: metadata.tokenEndpoint, deviceCode, client, transport });
      if ('status' in result) return result;
      return normalize(result.body, sentAt, client.scopes);
    },

    async revoke(tokens) {
      return revokeTokens({ endpoint: metadata.revocationEndpoint, style: metadata.revocationStyle, tokens, client, transport });
    },
  };
}
