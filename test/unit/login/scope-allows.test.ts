import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { scopeAllows } from '../../../nodes/oauth2-connection-routes';

// Node-RED's own rule, which the status route follows without calling the write guard (and auditing a refusal).
const nodeRed = createRequire(require.resolve('@node-red/editor-api/package.json'))('./lib/auth/permissions.js') as {
  hasPermission(scope: unknown, permission: string): boolean;
};

describe("status route: who may see a device login's code follows Node-RED's permission rule", () => {
  const scopes: unknown[] = ['*', 'read', 'write', '*.read', '*.write', 'oauth2-connection.write', 'oauth2-connection.read', 'flows.write', '', [], ['read'], ['read', 'oauth2-connection.write'], ['flows.read', 'write'], undefined, null, 42];
  for (const permission of ['oauth2-connection.write', 'oauth2-connection.read']) {
    it(`${permission}: the same answer as hasPermission for every scope`, () => {
      for (const scope of scopes) {
        assert.equal(scopeAllows(scope, permission), nodeRed.hasPermission(scope, permission), `scope ${JSON.stringify(scope)}`);
      }
    });
  }
});
