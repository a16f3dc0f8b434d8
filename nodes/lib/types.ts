/** Shapes shared by the engine's layers. Plain data: no Node-RED, no network handles. */

export type GrantType = 'authorization_code' | 'client_credentials' | 'device_code';

export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'none';

/** Authorization server metadata we use (RFC 8414 names, camel-cased). */
export type RevocationStyle = 'rfc7009' | 'json' | 'bearer' | 'delete';

export interface ProviderMetadata {
  issuer?: string;
  authorizationEndpoint?: string;
  tokenEndpoint: string;
  revocationEndpoint?: string;
  /** How the revocation endpoint wants tokens (oauth/revocation.ts); default RFC 7009. */
  revocationStyle?: RevocationStyle;
  deviceAuthorizationEndpoint?: string;
  userinfoEndpoint?: string;
  /**
   * A multi-tenant issuer's template (`…/{tenantid}/v2.0`, see oauth/tenant-issuer.ts): the metadata names it
   * instead of the configured issuer, and each token names its own tenant.
   */
  issuerTemplate?: string;
  /** RFC 9207: the server sends `iss` with every authorization response. */
  authorizationResponseIssParameterSupported?: boolean;
  scopesSupported?: string[];
  codeChallengeMethodsSupported?: string[];
}

/** One OAuth2 client as the user configured it. `clientSecret` comes from Node-RED's credential store. */
export interface ClientSettings {
  clientId: string;
  clientSecret?: string;
  authMethod: ClientAuthMethod;
  scopes: string[];
  /** RFC 8707 resource indicators, sent as repeated `resource` parameters. */
  resources: string[];
  /** Extra authorize-request parameters, for example access_type=offline or prompt=consent. */
  extraAuthorizeParams: Record<string, string>;
  /** Extra token-request parameters, for example audience=... */
  extraTokenParams: Record<string, string>;
  /** How scopes are joined in requests: a space (RFC 6749 3.3), or a comma for providers that want one. */
  scopeSeparator?: ' ' | ',';
  /** `off`: no PKCE (RFC 7636) parameters at all, for providers that refuse them. Default S256. */
  pkce?: 'S256' | 'off';
}

/**
 * Everything that decides where a client secret or a token goes and how the client proves itself: the
 * provider's endpoints as configured (an empty endpoint means "discovered from the issuer"), the client id and
 * its authentication method. Two settings with equal targets send credentials to the same servers.
 */
export interface CredentialTarget {
  clientId: string;
  authMethod: ClientAuthMethod;
  issuer?: string;
  authorizationEndpoint?: string;
  tokenEndpoint?: string;
  revocationEndpoint?: string;
  deviceAuthorizationEndpoint?: string;
}

/** What a token response means to us, normalised. Times are epoch milliseconds. */
export interface TokenSet {
  accessToken: string;
  tokenType: string;
  refreshToken?: string;
  idToken?: string;
  /** When the access token stops being usable (from expires_in, else the JWT exp, else a default). */
  expiresAt: number;
  /**
   * How expiresAt was decided, shown to the user: `expires_at`, the provider's absolute time; `none`, the
   * provider gave no lifetime and no refresh token, so the token is used until the API refuses it.
   */
  expirySource: 'expires_in' | 'expires_at' | 'jwt' | 'default' | 'none';
  /** Granted scopes when the server said (else the requested ones). */
  scopes: string[];
  obtainedAt: number;
  /**
   * When the refresh token itself stops working, when the provider says (`refresh_token_expires_in`, or
   * `refresh_expires_in`): after it, only a new login helps. Absent: the provider did not say.
   */
  refreshExpiresAt?: number;
  /**
   * Connection values the provider gave with the tokens (connection-values.ts): token-response fields, callback
   * parameters and the post-login lookup, checked before they were kept. Never a token or a secret.
   */
  values?: Record<string, string>;
  /** Account or subject when the provider told us (id_token `sub` / `email` / `preferred_username`). */
  subject?: string;
  /**
   * The authorization-server settings the tokens were obtained with (a login, a device login, a client-credentials
   * fetch), kept through refreshes. Only a connection with these settings uses, refreshes or revokes them.
   * Absent for tokens stored by older versions (used as before, and stamped at their next refresh).
   */
  issuedTo?: CredentialTarget;
}
