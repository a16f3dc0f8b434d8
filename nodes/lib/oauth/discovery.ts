/**
 * Authorization server metadata discovery: RFC 8414 first, then OpenID Connect Discovery 1.0.
 * The document must name exactly the issuer we asked about (RFC 8414 section 3.3): otherwise an attacker who
 * can serve a document could point our token requests, with the client secret, at their own endpoints.
 */
import { isAllowedEndpointUrl } from '../url-policy';
import { OAuth2Error } from '../errors';
import type { ProviderMetadata } from '../types';

export interface DiscoveryOptions {
  timeoutMs: number;
  /** Injectable for tests and for runtimes with their own fetch. */
  fetchImpl?: typeof fetch;
}

const MAX_DOCUMENT_BYTES = 512 * 1024;

function failed(message: string, params: Record<string, string | undefined>): OAuth2Error {
  // The catalog's text is "Discovery failed: __reason__": every failure needs a reason, or users see the placeholder.
  return new OAuth2Error('OAUTH2_DISCOVERY_FAILED', message, { params: { ...params, reason: params.reason ?? message } });
}

/** RFC 8414 section 3: the well-known segment goes between the host and the issuer's path. */
export function rfc8414MetadataUrl(issuer: URL): string {
  const path = issuer.pathname === '/' ? '' : issuer.pathname.replace(/\/$/, '');
  return `${issuer.origin}/.well-known/oauth-authorization-server${path}`;
}

/** OIDC Discovery section 4: the well-known segment is appended to the issuer. */
export function oidcMetadataUrl(issuer: URL): string {
  return `${issuer.origin}${issuer.pathname.replace(/\/$/, '')}/.well-known/openid-configuration`;
}

interface FetchOutcome { ok: true; doc: Record<string, unknown> }
interface FetchMiss { ok: false; reason: string }

async function fetchDocument(url: string, opts: DiscoveryOptions): Promise<FetchOutcome | FetchMiss> {
  const fetchImpl = opts.fetchImpl ?? fetch;
  let response: Response;
  try {
    response = await fetchImpl(url, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(opts.timeoutMs) });
  } catch (err) {
    const name = err instanceof Error ? err.name : '';
    return { ok: false, reason: name === 'TimeoutError' || name === 'AbortError' ? 'timeout' : 'unreachable' };
  }
  if (!response.ok) {
    await response.body?.cancel().catch(() => undefined);
    return { ok: false, reason: `HTTP ${response.status}` };
  }
  let text: string;
  try {
    text = await response.text();
  } catch {
    return { ok: false, reason: 'unreadable body' };
  }
  if (text.length > MAX_DOCUMENT_BYTES) return { ok: false, reason: 'document too large' };
  try {
    const doc: unknown = JSON.parse(text);
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return { ok: false, reason: 'not a JSON object' };
    return { ok: true, doc: doc as Record<string, unknown> };
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
}

function endpoint(doc: Record<string, unknown>, field: string, required: boolean): string | undefined {
  const value = doc[field];
  if (value === undefined || value === null) {
    if (required) throw failed(`The provider metadata has no ${field}`, { field });
    return undefined;
  }
  if (typeof value !== 'string' || !isAllowedEndpointUrl(value)) {
    throw failed(`The provider metadata's ${field} is not an https URL (http is allowed only for loopback hosts)`, { field });
  }
  return value;
}

function stringList(doc: Record<string, unknown>, field: string): string[] | undefined {
  const value = doc[field];
  return Array.isArray(value) && value.every((v) => typeof v === 'string') ? (value as string[]) : undefined;
}

/** Maps a validated metadata document (snake_case, RFC 8414) to ProviderMetadata. */
export function toProviderMetadata(doc: Record<string, unknown>, issuer: string): ProviderMetadata {
  const metadata: ProviderMetadata = {
    issuer,
    tokenEndpoint: endpoint(doc, 'token_endpoint', true) as string,
    authorizationEndpoint: endpoint(doc, 'authorization_endpoint', false),
    revocationEndpoint: endpoint(doc, 'revocation_endpoint', false),
    deviceAuthorizationEndpoint: endpoint(doc, 'device_authorization_endpoint', false),
    userinfoEndpoint: endpoint(doc, 'userinfo_endpoint', false),
    authorizationResponseIssParameterSupported: doc.authorization_response_iss_parameter_supported === true,
    scopesSupported: stringList(doc, 'scopes_supported'),
    codeChallengeMethodsSupported: stringList(doc, 'code_challenge_methods_supported'),
  };
  // Drop absent optional members so the object compares and serialises cleanly.
  for (const key of Object.keys(metadata) as (keyof ProviderMetadata)[]) {
    if (metadata[key] === undefined) delete metadata[key];
  }
  return metadata;
}

export async function discoverProvider(issuerUrl: string, opts: DiscoveryOptions): Promise<ProviderMetadata> {
  let issuer: URL;
  try {
    issuer = new URL(issuerUrl);
  } catch {
    throw failed('The issuer is not a valid URL', { field: 'issuer' });
  }
  if (!isAllowedEndpointUrl(issuerUrl) || issuer.search) {
    throw failed('The issuer must be an https URL without query (http only for loopback hosts)', { field: 'issuer' });
  }

  const misses: string[] = [];
  for (const url of [rfc8414MetadataUrl(issuer), oidcMetadataUrl(issuer)]) {
    const outcome = await fetchDocument(url, opts);
    if (!outcome.ok) {
      misses.push(`${new URL(url).pathname}: ${outcome.reason}`);
      continue;
    }
    // A document that exists but names another issuer is an error, not a miss (RFC 8414 section 3.3).
    const documentIssuer = outcome.doc.issuer;
    if (documentIssuer !== issuerUrl) {
      throw failed('The provider metadata names a different issuer than the one configured', {
        expected: issuerUrl,
        received: typeof documentIssuer === 'string' ? documentIssuer.slice(0, 200) : String(documentIssuer),
        field: 'issuer',
      });
    }
    return toProviderMetadata(outcome.doc, issuerUrl);
  }
  throw failed(`No provider metadata found for ${issuer.host} (${misses.join('; ')})`, {
    host: issuer.host,
    reason: misses.join('; '),
  });
}

export { isAllowedEndpointUrl };
