/**
 * Multi-tenant issuers: Microsoft Entra ID's `common` and `organizations` endpoints serve one metadata document
 * for every tenant, whose issuer is the template `https://login.microsoftonline.com/{tenantid}/v2.0`; each token
 * then names its own tenant, in `iss` and in the `tid` claim. Exact issuer matching (RFC 8414 section 3.3)
 * refuses that document, so for these configured issuers only the template is accepted, and the tenant a token
 * names is checked instead: `tid` must be a GUID and `iss` the template with that tenant. `consumers` names one
 * tenant, that of personal Microsoft accounts.
 *
 * Source: Microsoft identity platform, "Access tokens", section "Validate the issuer"
 * (https://learn.microsoft.com/en-us/entra/identity-platform/access-tokens#validate-the-issuer).
 */
import { OAuth2Error } from '../errors';
import { sanitizeProviderText } from './error-mapping';
import { decodeJwtPayload } from './token-response';

const MICROSOFT_TEMPLATE = 'https://login.microsoftonline.com/{tenantid}/v2.0';
const MICROSOFT_MULTI_TENANT = /^https:\/\/login\.microsoftonline\.com\/(common|organizations)\/v2\.0\/?$/;
const MICROSOFT_CONSUMERS = /^https:\/\/login\.microsoftonline\.com\/consumers\/v2\.0\/?$/;
/** The tenant of personal Microsoft accounts. */
const MICROSOFT_CONSUMER_TENANT = '9188040d-6c67-4c5b-b112-36a304b66dad';
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The template a metadata document may name instead of the configured issuer, or undefined when the document
 * must name the configured issuer exactly. For `consumers` the document names the consumer tenant's issuer.
 */
export function acceptedDocumentIssuer(configured: string): { issuer: string; template?: string } | undefined {
  if (MICROSOFT_MULTI_TENANT.test(configured)) return { issuer: MICROSOFT_TEMPLATE, template: MICROSOFT_TEMPLATE };
  if (MICROSOFT_CONSUMERS.test(configured)) return { issuer: MICROSOFT_TEMPLATE.replace('{tenantid}', MICROSOFT_CONSUMER_TENANT) };
  return undefined;
}

/** Whether `iss` is the template with a tenant GUID in its place (an authorization response's `iss`, RFC 9207). */
export function matchesTemplate(template: string, iss: string): boolean {
  const [before, after] = template.split('{tenantid}') as [string, string | undefined];
  if (after === undefined || !iss.startsWith(before) || !iss.endsWith(after)) return false;
  return GUID.test(iss.slice(before.length, iss.length - after.length));
}

/**
 * Checks the tenant an id_token names against the template: `tid` a GUID, and `iss` the template with that
 * tenant. Throws OAUTH2_ISSUER_MISMATCH otherwise; a login without an id_token has nothing to check.
 */
export function checkTenantIssuer(template: string, idToken: string | undefined): void {
  if (!idToken) return;
  const claims = decodeJwtPayload(idToken);
  const tid = typeof claims?.tid === 'string' ? claims.tid : '';
  const iss = typeof claims?.iss === 'string' ? claims.iss : '';
  if (GUID.test(tid) && iss === template.replace('{tenantid}', tid)) return;
  throw new OAuth2Error('OAUTH2_ISSUER_MISMATCH', 'The id_token does not name the tenant it comes from (its iss and tid claims disagree)', {
    params: { expected: template, received: sanitizeProviderText(iss) ?? '' },
  });
}
