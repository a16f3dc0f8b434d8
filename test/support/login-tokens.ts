/**
 * A real login without a browser or Node-RED: the authorize URL, the provider's login and consent pages
 * (driven by loginThroughProvider), the callback's checks and the code exchange, as the connection does them.
 * For tests that need a refresh token the real provider issued.
 */
import { buildAuthorizeUrl } from '../../nodes/lib/oauth/authorize-url';
import { validateCallback } from '../../nodes/lib/oauth/callback';
import { createPkcePair, randomToken } from '../../nodes/lib/oauth/pkce';
import { createTokenEndpointClient } from '../../nodes/lib/oauth/simple-oauth2-client';
import type { ClientSettings, ProviderMetadata, TokenSet } from '../../nodes/lib/types';
import { loginThroughProvider } from './auth-server';

/** `redirectUri` must be registered at the provider (AuthServer.addRedirectUri). */
export async function loginTokens(metadata: ProviderMetadata, client: ClientSettings, redirectUri: string): Promise<TokenSet> {
  const pkce = createPkcePair();
  const state = randomToken();
  const nonce = randomToken();
  const url = buildAuthorizeUrl({ metadata, client, redirectUri, state, codeChallenge: pkce.codeChallenge, nonce });
  const callback = await loginThroughProvider(url);
  const { code } = validateCallback(Object.fromEntries(callback.searchParams), {
    state,
    issuer: metadata.issuer,
    issRequired: metadata.authorizationResponseIssParameterSupported === true,
  });
  return createTokenEndpointClient({ metadata, client, timeoutMs: 5000 }).exchangeCode({ code, codeVerifier: pkce.codeVerifier, redirectUri, nonce });
}
