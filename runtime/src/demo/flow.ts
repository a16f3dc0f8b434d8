/** The flow the demo deploys: record changed (demo API) → change → POST to a second demo endpoint, with debug. */

export interface DemoFlowOptions {
  issuer: string;
  apiUrl: string;
  clientId: string;
  clientSecret: string;
  redirectUri: string;
}

export const DEMO_IDS = {
  tab: 'demo0000tab00001',
  connection: 'demo0000conn0001',
  trigger: 'demo0000trig0001',
} as const;

export function demoFlow(o: DemoFlowOptions): Record<string, unknown>[] {
  const z = DEMO_IDS.tab;
  return [
    {
      id: z,
      type: 'tab',
      label: 'OAuth2 demo',
      disabled: false,
      info:
        'A local authorization server and a "records" API run on this machine for the demo. The trigger watches ' +
        'the API (a record changes every few seconds), the change node shapes each change, and the request node ' +
        'POSTs it to a second endpoint of the API, with the same login.',
    },
    {
      id: 'demo0000note0001',
      type: 'comment',
      z,
      name: 'Start here: double-click "demo records changed", then the pencil by its Connection',
      info:
        '1. Double-click "demo records changed", then the pencil next to its Connection ("Demo provider"). The ' +
        'connection is a configuration node, so it is not on the canvas: the Configuration nodes sidebar ' +
        '(menu, Configuration nodes) lists it too.\n' +
        '2. Press Log in. The demo server\'s own login page opens: the account is printed in the terminal (and in ' +
        'the README). Then allow the access on its consent page; the popup closes itself.\n' +
        '3. Update (the connection\'s button), Done (the trigger\'s), then Deploy. Within seconds the Debug sidebar (on the right) shows each change, and the ' +
        'answer of the API ' +
        'it was sent to.\n\n' +
        `What arrived at the second endpoint: ${o.apiUrl}/received`,
      x: 390,
      y: 60,
      wires: [],
    },
    {
      id: DEMO_IDS.trigger,
      type: 'oauth2-record-change',
      z,
      name: 'demo records changed',
      connection: DEMO_IDS.connection,
      url: '/records',
      interval: 5,
      intervalUnit: 's',
      recordsPath: '',
      recordsPathType: 'auto',
      idPath: 'id',
      detection: 'updatedAt',
      versionPath: 'updated_at',
      emitCreated: true,
      emitUpdated: true,
      emitDeleted: false,
      firstRun: 'remember',
      includePrevious: false,
      batch: false,
      watermarkParam: '',
      watermarkOverlapSec: 60,
      watermarkFormat: 'iso',
      pagination: 'none',
      paginationPath: '',
      paginationParam: '',
      pageStart: 1,
      pageSizeParam: '',
      pageSize: '',
      maxPages: 100,
      maxRemembered: 100000,
      requestTimeout: '',
      x: 170,
      y: 140,
      wires: [['demo0000chng0001']],
    },
    {
      id: 'demo0000chng0001',
      type: 'change',
      z,
      name: 'what to send',
      rules: [
        {
          t: 'set',
          p: 'payload',
          pt: 'msg',
          to: '{ "record": payload.id, "name": payload.name, "event": event, "version": version }',
          tot: 'jsonata',
        },
      ],
      action: '',
      property: '',
      from: '',
      to: '',
      reg: false,
      x: 390,
      y: 140,
      wires: [['demo0000post0001', 'demo0000dbug0001']],
    },
    {
      id: 'demo0000post0001',
      type: 'http-oauth2-request',
      z,
      name: 'POST to the second endpoint',
      connection: DEMO_IDS.connection,
      method: 'POST',
      url: '/sink',
      paytoqs: 'ignore',
      headers: [{ k: 'Content-Type', v: 'application/json' }],
      ret: 'txt',
      requestTimeout: '',
      tls: '',
      followRedirects: true,
      maxRedirects: 5,
      retryStatuses: '429,502,503,504',
      maxAttempts: 3,
      retryUnsafe: false,
      maxRetryAfterSec: 60,
      non2xxAsOutput: false,
      x: 640,
      y: 140,
      wires: [['demo0000dbug0002']],
    },
    {
      id: 'demo0000dbug0001',
      type: 'debug',
      z,
      name: 'change',
      active: true,
      tosidebar: true,
      console: false,
      tostatus: false,
      complete: 'payload',
      targetType: 'msg',
      statusVal: '',
      statusType: 'auto',
      x: 610,
      y: 200,
      wires: [],
    },
    {
      id: 'demo0000dbug0002',
      type: 'debug',
      z,
      name: 'sent (API status)',
      active: true,
      tosidebar: true,
      console: false,
      tostatus: true,
      complete: 'statusCode',
      targetType: 'msg',
      statusVal: 'statusCode',
      statusType: 'msg',
      x: 880,
      y: 140,
      wires: [],
    },
    {
      id: DEMO_IDS.connection,
      type: 'oauth2-connection',
      name: 'Demo provider',
      grantType: 'authorization_code',
      issuer: o.issuer,
      authorizationEndpoint: `${o.issuer}/auth`,
      tokenEndpoint: `${o.issuer}/token`,
      revocationEndpoint: `${o.issuer}/token/revocation`,
      deviceAuthorizationEndpoint: '',
      issParameterSupported: true,
      clientId: o.clientId,
      authMethod: 'client_secret_basic',
      scopes: 'openid offline_access email api:read api:write',
      resources: '',
      authorizeParams: [],
      tokenParams: [],
      apiBaseUrl: o.apiUrl,
      allowedOrigins: '',
      expiredStatuses: '401',
      refreshSkewSec: 60,
      redirectUri: o.redirectUri,
      credentials: { clientSecret: o.clientSecret },
    },
  ];
}
