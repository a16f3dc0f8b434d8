/**
 * DNS rebinding: a page whose own name an attacker points at 127.0.0.1 talks to a loopback runtime as a
 * same-origin page, so the cross-site rule cannot see it; without an admin login the runtime answers its admin
 * app and editor WebSocket only under loopback names. With a login, other names reach Node-RED's own checks.
 */
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { startRuntime, type TestRuntime } from '../support/runtime';

function get(port: number, pathname: string, host: string, extra: http.OutgoingHttpHeaders = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: pathname, headers: { host, ...extra } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A WebSocket handshake to <admin root>/comms: the status line of the answer. */
function upgrade(port: number, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      path: '/comms',
      headers: { host, connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve(String(res.statusCode));
    });
    req.on('response', (res) => {
      res.resume();
      resolve(String(res.statusCode));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('runtime: DNS rebinding (a name pointed at 127.0.0.1)', function () {
  this.timeout(60000);

  describe('no admin login, on loopback', () => {
    let runtime: TestRuntime;
    before(async () => {
      runtime = await startRuntime();
    });
    after(async () => {
      await runtime?.stop();
    });

    it('refuses the admin API, the editor and the package routes under another name, before anything is read', async () => {
      for (const pathname of ['/flows', '/', '/oauth2-connection/conn1/status', '/settings']) {
        const res = await get(runtime.port, pathname, `rebound.example:${runtime.port}`);
        assert.equal(res.status, 403, `${pathname}: ${res.status} ${res.body.slice(0, 200)}`);
        assert.match(res.body, /OAUTH2_HOST_REFUSED/);
      }
    });

    it('answers under every loopback name, with or without the port', async () => {
      for (const host of [`127.0.0.1:${runtime.port}`, `localhost:${runtime.port}`, 'localhost', `[::1]:${runtime.port}`, `editor.localhost:${runtime.port}`]) {
        const res = await get(runtime.port, '/flows', host);
        assert.equal(res.status, 200, `${host}: ${res.status} ${res.body.slice(0, 200)}`);
      }
    });

    it("refuses the editor's WebSocket under another name and opens it under a loopback one", async () => {
      assert.equal(await upgrade(runtime.port, `rebound.example:${runtime.port}`), '403');
      assert.equal(await upgrade(runtime.port, `127.0.0.1:${runtime.port}`), '101');
    });

    it("leaves the health endpoint and the flows' own endpoints alone", async () => {
      assert.equal((await get(runtime.port, '/healthz', `rebound.example:${runtime.port}`)).status, 200);
      assert.notEqual((await get(runtime.port, '/api/nothing-here', `rebound.example:${runtime.port}`)).status, 403);
    });
  });

  describe('with an admin login', () => {
    let runtime: TestRuntime;
    before(async () => {
      runtime = await startRuntime({ adminAuth: { adminPassword: 'admin-password-1', readerPassword: 'reader-password-1' } });
    });
    after(async () => {
      await runtime?.stop();
    });

    it("another name reaches Node-RED's login, which asks for a token", async () => {
      const res = await get(runtime.port, '/flows', `editor.example.com:${runtime.port}`);
      assert.equal(res.status, 401, res.body.slice(0, 200));
    });
  });
});
