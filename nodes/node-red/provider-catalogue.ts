/**
 * The provider presets as the connection dialog's Provider field needs them: what fills the connection's fields,
 * asks for the provider's values and links to its pages. The catalogue is validated once, when first asked for,
 * so the editor never fills a connection from a preset the schema refuses; facts the dialog does not show
 * (traceability, refresh-token behaviour) stay out of the answer.
 */
import catalogue from '../lib/providers/catalogue.json';
import { validateCatalogue, type ProviderPreset } from '../lib/providers/schema';

export type EditorPreset = Pick<
  ProviderPreset,
  | 'id' | 'name' | 'registerAppUrl' | 'grants' | 'endpoints' | 'revocationStyle' | 'issuer' | 'variables' | 'defaultScopes'
  | 'scopeSeparator' | 'authorizeParams' | 'tokenParams' | 'authMethod' | 'pkce' | 'apiBaseUrl' | 'allowedOrigins' | 'deviations'
> & {
  /** The provider documentation pages the preset's facts come from. */
  docs: string[];
  /** What the user should know before logging in (notes.remarks). */
  remarks: string[];
};

function editorView(p: ProviderPreset): EditorPreset {
  return {
    id: p.id,
    name: p.name,
    docs: p.docs.map((d) => d.url),
    registerAppUrl: p.registerAppUrl,
    grants: p.grants,
    endpoints: p.endpoints,
    revocationStyle: p.revocationStyle,
    issuer: p.issuer,
    variables: p.variables,
    defaultScopes: p.defaultScopes,
    scopeSeparator: p.scopeSeparator,
    authorizeParams: p.authorizeParams,
    tokenParams: p.tokenParams,
    authMethod: p.authMethod,
    pkce: p.pkce,
    apiBaseUrl: p.apiBaseUrl,
    allowedOrigins: p.allowedOrigins,
    deviations: p.deviations,
    remarks: p.notes.remarks ?? [],
  };
}

let cached: EditorPreset[] | undefined;

/** Every preset, sorted by name as the list shows them. Throws PresetError when the shipped catalogue is invalid. */
export function editorCatalogue(): EditorPreset[] {
  cached ??= validateCatalogue(catalogue)
    .map(editorView)
    .sort((a, b) => a.name.localeCompare(b.name, 'en'));
  return cached;
}
