/** Builds the authorization request URL (RFC 6749 4.1.1 + PKCE + OIDC nonce + RFC 8707 resources). */
import { OAuth2Error } from '../errors';
import type { ClientSettings, ProviderMetadata } from '../types';
import { RESERVED_AUTHORIZE_PARAMS } from './reserved-params';

export interface AuthorizeUrlInput {
  metadata: ProviderMetadata;
  client: ClientSettings;
  redirectUri: string;
  state: string;
  codeChallenge: string;
  /** Sent only when `openid` is among the scopes (it is an OIDC parameter). */
  nonce?: string;
}

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
  if (client.scopes.length > 0) q.set('scope', client.scopes.join(client.scopeSeparator ?? ' '));
  q.set('state', input.state);
  if (client.pkce === 'off') {
    // A provider that refuses PKCE parameters: none is sent, whatever the endpoint's own query holds.
    q.delete('code_challenge');
    q.delete('code_challenge_method');
  } else {
    q.set('code_challenge', input.codeChallenge);
    q.set('code_challenge_method', 'S256');
  }
  q.delete('nonce');
  if (input.nonce && client.scopes.includes('openid')) q.set('nonce', input.nonce);
  q.delete('resource');
  for (const resource of client.resources) q.append('resource', resource);
  for (const [name, value] of Object.entries(client.extraAuthorizeParams)) {
    if (!RESERVED_AUTHORIZE_PARAMS.has(name.toLowerCase())) q.set(name, value);
  }
  return url.href;
}
