/**
 * The parameters a connection's extra-parameter lists may never set: one list per request, refused where the
 * lists are entered (the editor's validators, resources/editor.js, and the deploy, connection-settings.ts) and
 * kept out again by the request builders. test/unit/editor-params.test.ts pins the editor's copy to these.
 *
 * Authorize request: state, code_challenge(_method) and nonce bind the response to this login (CSRF, code
 * injection, token replay); redirect_uri, client_id and response_type decide where the code goes and what kind
 * of answer comes back; scope and resource have their own fields. An extra overriding one would silently
 * disable a defence or send the code elsewhere, so extras are additive only.
 *
 * Token request: the grant (grant_type, code, code_verifier, redirect_uri, refresh_token, device_code) and the
 * client's identity (client_id, client_secret) come from their own fields, and so do scope and resource.
 */
export const RESERVED_AUTHORIZE_PARAMS: ReadonlySet<string> = new Set([
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

export const RESERVED_TOKEN_PARAMS: ReadonlySet<string> = new Set([
  'grant_type',
  'code',
  'code_verifier',
  'redirect_uri',
  'refresh_token',
  'device_code',
  'client_id',
  'client_secret',
  'scope',
  'resource',
]);
