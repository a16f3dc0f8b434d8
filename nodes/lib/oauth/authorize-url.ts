/** Builds the authorization request URL (RFC 6749 4.1.1 + PKCE + OIDC nonce + RFC 8707 resources). */
import { OAuth2Error } from '../errors';
import type { ClientSettings, ProviderMetadata } from '../types';

export interface AuthorizeUrlInput {
  metadata: ProviderMetadata;
  client: ClientSettings;
  redirectUri: string;
  state: string;
  codeChallenge: string;
  /** Sent only when `openid` is among the scopes (it is an OIDC parameter). */
  nonce?: string;
}

/**
 * Parameters extras may never set. state, code_challenge(_method) and nonce bind the response to this login
 * (CSRF, code injection, token replay); redirect_uri, client_id and response_type decide where the code goes
 * and what kind of answer comes back. A user-supplied extra overriding one would silently disable a defence
 * or send the code elsewhere, so extras are additive only.
 */
export const PROTECTED_AUTHORIZE_PARAMS: ReadonlySet<string> = new Set([
  'state',
  'code_challenge',
  'code_challenge_method',
  'redirect_uri',
  'client_id',
  'response_type',
  'nonce',
  'scope',
  'resource',
]);

export function buildAuthorizeUrl(input: AuthorizeUrlInput): string {
  const { metadata, client } = input;
  if (!metadata.authorizationEndpoint) {
    throw new OAuth2Error('OAUTH2_INVALID_CONFIG', 'The provider has no authorization endpoint', {
      params: { field: 'authorizationEndpoint', reason: 'required' },
    });
  }
  // Keep the endpoint's own query (some providers put a tenant or policy there); ours are set on top.
  const url = new URL(metadata.authorizationEndpoint);
  const q = url.searchParams;
  q.set('response_type', 'code');
  q.set('client_id', client.clientId);
  q.set('redirect_uri', input.redirectUri);
  q.delete('scope');
  if (client.scopes.length > 0) q.set('scope', client.scopes.join(' '));
  q.set('state', input.state);
  q.set('code_challenge', input.codeChallenge);
  q.set('code_challenge_method', 'S256');
  q.delete('nonce');
  if (input.nonce && client.scopes.includes('openid')) q.set('nonce', input.nonce);
  q.delete('resource');
  for (const resource of client.resources) q.append('resource', resource);
  for (const [name, value] of Object.entries(client.extraAuthorizeParams)) {
    if (!PROTECTED_AUTHORIZE_PARAMS.has(name.toLowerCase())) q.set(name, value);
  }
  return url.href;
}
