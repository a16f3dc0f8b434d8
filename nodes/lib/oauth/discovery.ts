/**
 * Authorization server metadata discovery: RFC 8414 first, then OpenID Connect Discovery 1.0.
 * The document must name exactly the issuer we asked about (RFC 8414 section 3.3): otherwise an attacker who
 * can serve a document could point our token requests, with the client secret, at their own endpoints. The one
 * exception is a multi-tenant issuer's documented template (tenant-issuer.ts).
 * Every URL fetched, redirects included, passes the endpoint URL policy; the document is read up to a cap.
 */
import { readCapped } from '../http/body';
import { isAllowedEndpointUrl } from '../url-policy';
import { OAuth2Error } from '../errors';
import type { ProviderMetadata } from '../types';
import { acceptedDocumentIssuer } from './tenant-issuer';

export interface DiscoveryOptions {
  timeoutMs: number;
  /** Injectable for tests and for runtimes with their own fetch. */
  fetchImpl?: typeof fetch;
}

const MAX_DOCUMENT_BYTES = 512 * 1024;
/** Redirects followed per metadata URL; each one must pass the endpoint URL policy. */
const MAX_REDIRECTS = 5;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

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

function networkReason(err: unknown): string {
  const name = err instanceof Error ? err.name : '';
  return name === 'TimeoutError' || name === 'AbortError' ? 'timeout' : 'unreachable';
}

/**
 * Fetches one metadata URL, following redirects by hand: fetch's own redirects would reach any URL a server
 * names, such as http://0.0.0.0:<port> or http://[::ffff:127.0.0.1]:<port>, which the policy refuses when typed.
 */
async function fetchDocument(url: string, opts: DiscoveryOptions): Promise<FetchOutcome | FetchMiss> {
  const fetchImpl = opts.fetchImpl ?? fetch;
  // One deadline for the document, redirects and body included.
  const signal = AbortSignal.timeout(opts.timeoutMs);
  let target = url;
  let response: Response;
  for (let hops = 0; ; hops += 1) {
    try {
      response = await fetchImpl(target, { headers: { accept: 'application/json' }, redirect: 'manual', signal });
    } catch (err) {
      return { ok: false, reason: networkReason(err) };
    }
    const location = response.headers.get('location');
    if (!REDIRECT_STATUSES.has(response.status) || location === null) break;
    await response.body?.cancel().catch(() => undefined);
    let next: string;
    try {
      next = new URL(location, target).href;
    } catch {
      return { ok: false, reason: `HTTP ${response.status} to an invalid location` };
    }
    if (!isAllowedEndpointUrl(next)) return { ok: false, reason: `redirected to ${next.slice(0, 200)}, which is not https (http only for loopback hosts)` };
    if (hops >= MAX_REDIRECTS) return { ok: false, reason: `more than ${MAX_REDIRECTS} redirects` };
    target = next;
  }
  if (!response.ok) {
    await response.body?.cancel().catch(() => undefined);
    return { ok: false, reason: `HTTP ${response.status}` };
  }
  const declared = Number(response.headers.get('content-length'));
  if (declared > MAX_DOCUMENT_BYTES) {
    await response.body?.cancel().catch(() => undefined);
    return { ok: false, reason: 'document too large' };
  }
  let text: string;
  try {
    // Node's web streams are async iterable (leaving the loop cancels them); the DOM typings do not say so.
    const body = response.body ? await readCapped(response.body as unknown as AsyncIterable<Uint8Array>, MAX_DOCUMENT_BYTES) : Buffer.alloc(0);
    if (body === undefined) return { ok: false, reason: 'document too large' };
    text = body.toString('utf8');
  } catch (err) {
    return { ok: false, reason: networkReason(err) === 'timeout' ? 'timeout' : 'unreadable body' };
  }
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

/** Why an issuer cannot be discovered at all, known from its text before anything is sent; undefined if it can. */
export function issuerInputError(issuerUrl: string): OAuth2Error | undefined {
  let issuer: URL;
  try {
    issuer = new URL(issuerUrl);
  } catch {
    return failed('The issuer is not a valid URL', { field: 'issuer' });
  }
  if (!isAllowedEndpointUrl(issuerUrl) || issuer.search) {
    return failed('The issuer must be an https URL without query (http only for loopback hosts)', { field: 'issuer' });
  }
  return undefined;
}

/**
 * What a failed discovery may tell a caller who cannot choose where the runtime connects (the editor's Discover
 * button is open to read-only users): a mistake in the issuer typed, as it is; anything that depends on what
 * the network answered, one generic error, so the answer cannot tell a closed port from a 404 or a page that is
 * not JSON. `logDetail` is the full story for the runtime's log (discovery carries no secret).
 */
export function discoveryFailureForCaller(issuerUrl: string, err: unknown): { error: OAuth2Error; logDetail?: string } {
  const inputError = issuerInputError(issuerUrl);
  if (inputError) return { error: inputError };
  return {
    error: new OAuth2Error('OAUTH2_DISCOVERY_FAILED', 'Discovery failed: no usable provider metadata at this issuer (the Node-RED log says why)', {
      params: { reason: 'seeLog' },
    }),
    logDetail: err instanceof Error ? err.message : String(err),
  };
}

export async function discoverProvider(issuerUrl: string, opts: DiscoveryOptions): Promise<ProviderMetadata> {
  const inputError = issuerInputError(issuerUrl);
  if (inputError) throw inputError;
  const issuer = new URL(issuerUrl);

  const misses: string[] = [];
  for (const url of [rfc8414MetadataUrl(issuer), oidcMetadataUrl(issuer)]) {
    const outcome = await fetchDocument(url, opts);
    if (!outcome.ok) {
      misses.push(`${new URL(url).pathname}: ${outcome.reason}`);
      continue;
    }
    // A document that exists but names another issuer is an error, not a miss (RFC 8414 section 3.3).
    // Microsoft's multi-tenant endpoints name a tenant template instead (tenant-issuer.ts).
    const documentIssuer = outcome.doc.issuer;
    const accepted = acceptedDocumentIssuer(issuerUrl);
    if (accepted && documentIssuer === accepted.issuer) {
      const metadata = toProviderMetadata(outcome.doc, issuerUrl);
      if (accepted.template) metadata.issuerTemplate = accepted.template;
      return metadata;
    }
    if (documentIssuer !== issuerUrl) {
      const shown = typeof documentIssuer === 'string' ? documentIssuer.slice(0, 200) : String(documentIssuer);
      throw failed(`The provider metadata at ${new URL(url).pathname} names a different issuer (${shown}) than the one configured`, {
        expected: issuerUrl,
        received: shown,
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
