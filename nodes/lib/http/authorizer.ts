/**
 * What the request pipeline needs from a connection. The pipeline asks for a token only for URLs the
 * allowlist accepts, and reports a token the API rejected so the connection refreshes at most once for it.
 */
export interface Authorizer {
  /** True when a bearer token may be sent to this absolute URL (origin in the allowlist). */
  allows(url: URL): boolean;
  /** A valid access token (refreshing first when within the skew). Throws OAuth2Error. */
  getAccessToken(): Promise<{ accessToken: string; tokenType: string }>;
  /**
   * The API answered `token` with an expired status: refresh unless another caller already replaced it with
   * a token that has `requestMs` (the time the rejected request took) plus a second of life left,
   * and return the token to retry with. Throws OAuth2Error (for example OAUTH2_LOGIN_REQUIRED).
   */
  renewAfterRejection(rejectedAccessToken: string, options?: { requestMs?: number }): Promise<{ accessToken: string; tokenType: string }>;
  /** Headers every request carries unless it sets them itself (a tenant id the provider named at login). */
  requestHeaders?(): Record<string, string> | undefined;
  /** Statuses that mean "token expired" for this connection (default [401]). */
  readonly expiredStatuses: readonly number[];
  /**
   * Besides the statuses: whether an answer says the token expired some other way (a 200 with `ok: false`, an
   * error code in the body), as the connection's condition says. Absent: the statuses alone decide.
   */
  expiredAnswer?(answer: { statusCode: number; headers: Record<string, string | string[]>; payload: unknown }): Promise<boolean>;
}
