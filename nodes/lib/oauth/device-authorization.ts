/** RFC 8628 device authorization grant: the authorization request and the token polling. */
import { OAuth2Error } from '../errors';
import type { ClientSettings } from '../types';
import { mapEndpointFailure, oauthErrorCode, sanitizeProviderText, type EndpointContext } from './error-mapping';
import { postForm, type TransportOptions } from './form-post';
import type { DeviceAuthorization, DevicePollPending } from './token-endpoint';

export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const DEFAULT_INTERVAL_SEC = 5;

function hostOf(url: string): string {
  return new URL(url).host;
}

function invalidField(field: string, host: string): OAuth2Error {
  return new OAuth2Error('OAUTH2_INVALID_TOKEN_RESPONSE', `The device authorization response from ${host} has an invalid ${field}`, {
    params: { field, host },
  });
}

function requiredString(body: Record<string, unknown>, field: string, host: string): string {
  const value = body[field];
  if (typeof value !== 'string' || value === '') throw invalidField(field, host);
  return value;
}

function positiveSeconds(value: unknown): number | undefined {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : undefined;
}

/** Starts a device authorization (RFC 8628 section 3.1/3.2). */
export async function requestDeviceAuthorization(input: {
  endpoint: string;
  client: ClientSettings;
  transport: TransportOptions;
  now: number;
}): Promise<DeviceAuthorization> {
  const { endpoint, client } = input;
  const host = hostOf(endpoint);
  const form = new URLSearchParams();
  if (client.scopes.length > 0) form.set('scope', client.scopes.join(client.scopeSeparator ?? ' '));
  for (const resource of client.resources) form.append('resource', resource);
  for (const [name, value] of Object.entries(client.extraTokenParams)) if (!form.has(name)) form.set(name, value);

  const ctx: EndpointContext = { host, endpoint: 'device authorization', secrets: [client.clientSecret] };
  const result = await postForm(endpoint, form, client, input.transport);
  if (result.kind !== 'response') throw mapEndpointFailure(result, ctx);
  if (result.status !== 200) {
    const error = mapEndpointFailure({ kind: 'http', status: result.status, body: result.body }, ctx);
    // A refusal here is the provider declining the device request, not a token problem.
    if (error.code === 'OAUTH2_TOKEN_REQUEST_REJECTED' || error.code === 'OAUTH2_LOGIN_REQUIRED') {
      throw new OAuth2Error('OAUTH2_PROVIDER_ERROR', `The device authorization endpoint at ${host} refused the request (${error.oauthError})`, {
        params: { ...error.params, error: error.oauthError ?? String(result.status), description: error.params.description ?? '' },
        oauthError: error.oauthError,
        statusCode: result.status,
      });
    }
    throw error;
  }
  if (typeof result.body !== 'object' || result.body === null) throw invalidField('body', host);
  const body = result.body as Record<string, unknown>;
  const expiresIn = positiveSeconds(body.expires_in);
  if (expiresIn === undefined) throw invalidField('expires_in', host);
  const verificationUriComplete = body.verification_uri_complete;
  return {
    deviceCode: requiredString(body, 'device_code', host),
    userCode: requiredString(body, 'user_code', host),
    verificationUri: requiredString(body, 'verification_uri', host),
    ...(typeof verificationUriComplete === 'string' && verificationUriComplete ? { verificationUriComplete } : {}),
    expiresAt: input.now + expiresIn * 1000,
    intervalSec: positiveSeconds(body.interval) ?? DEFAULT_INTERVAL_SEC,
  };
}

/**
 * One poll of the token endpoint for a device code (RFC 8628 section 3.4/3.5). Returns the raw success body
 * (the caller normalises it) or a pending status; the terminal errors become OAuth2Errors.
 */
export async function pollDeviceTokenOnce(input: {
  tokenEndpoint: string;
  deviceCode: string;
  client: ClientSettings;
  transport: TransportOptions;
}): Promise<{ body: unknown } | DevicePollPending> {
  const host = hostOf(input.tokenEndpoint);
  const form = new URLSearchParams({ grant_type: DEVICE_CODE_GRANT, device_code: input.deviceCode });
  for (const resource of input.client.resources) form.append('resource', resource);
  const ctx: EndpointContext = { host, endpoint: 'token', secrets: [input.client.clientSecret, input.deviceCode] };
  const result = await postForm(input.tokenEndpoint, form, input.client, input.transport);
  if (result.kind !== 'response') throw mapEndpointFailure(result, ctx);
  if (result.status === 200) return { body: result.body };

  const oauthError = oauthErrorCode(result.body);
  if (result.status < 500) {
    switch (oauthError) {
      case 'authorization_pending':
        return { status: 'authorization_pending' };
      case 'slow_down':
        return { status: 'slow_down' };
      case 'expired_token':
        throw new OAuth2Error('OAUTH2_DEVICE_CODE_EXPIRED', `The device code expired before it was approved (${host})`, {
          params: { host, error: oauthError },
          oauthError,
          statusCode: result.status,
        });
      case 'access_denied':
        throw new OAuth2Error('OAUTH2_ACCESS_DENIED', `The device login was denied (${host})`, {
          params: {
            host,
            error: oauthError,
            description: sanitizeProviderText((result.body as Record<string, unknown>).error_description, ctx.secrets),
          },
          oauthError,
          statusCode: result.status,
        });
    }
  }
  throw mapEndpointFailure({ kind: 'http', status: result.status, body: result.body }, ctx);
}
