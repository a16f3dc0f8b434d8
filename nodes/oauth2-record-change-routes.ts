import { OAuth2Error, translateError, type ErrorParams } from './lib/errors';
import type { NodeAPI } from './node-red-types';
import type { RecordChangeNode } from './record-change-node';

const NODE_ID = /^[0-9a-zA-Z._-]{1,64}$/;
/** The dialog shows this many changes; the rest are counted. */
const PREVIEW_LIMIT = 20;

/**
 * "Preview next poll": what the deployed node's next poll would emit from its current memory, without
 * emitting or remembering anything. It calls the API with the connection's token, so it needs write permission.
 *
 * With several instances (the Redis store) both routes work on any of them, the one polling or a standby: the
 * memory they read and clear is the shared one (a reset on a standby is seen by the polling instance at its
 * next poll, which then starts as a first poll).
 */
export function registerRecordChangeRoutes(
  RED: NodeAPI,
  deps: {
    translate: (key: string, params?: ErrorParams) => string;
    /** The node's own wording of shared-store failures (Redis away, another instance's reset...), if it has one. */
    describe?: (err: unknown) => string | undefined;
  },
): void {
  const deployedNode = (id: unknown): RecordChangeNode | null =>
    typeof id === 'string' && NODE_ID.test(id) ? (RED.nodes.getNode(id) as RecordChangeNode | null) : null;
  // Engine errors are worded in the connection's catalog, which holds every code.
  const message = (err: unknown): string =>
    deps.describe?.(err) ??
    translateError(err, (key, params) => RED._(`node-red-contrib-http-oauth2/oauth2-connection:oauth2-connection.${key}`, params));

  // "Forget remembered records": the editor's msg.reset.
  RED.httpAdmin.post('/oauth2-record-change/:id/reset', RED.auth.needsPermission('oauth2-record-change.write'), (req, res) => {
    const node = deployedNode(req.params.id);
    if (!node?.poller) {
      res.status(409).json({ error: { code: 'OAUTH2_INVALID_INPUT', message: deps.translate('errors.previewNotDeployed') } });
      return;
    }
    node.poller.reset().then(
      () => {
        node.status({ fill: 'grey', shape: 'ring', text: deps.translate('status.reset') });
        res.json({ reset: true });
      },
      (err: unknown) => res.status(500).json({ error: { code: 'OAUTH2_TRIGGER_STATE_FAILED', message: message(err) } }),
    );
  });

  RED.httpAdmin.post('/oauth2-record-change/:id/preview', RED.auth.needsPermission('oauth2-record-change.write'), (req, res) => {
    const node = deployedNode(req.params.id);
    res.set('cache-control', 'no-store');
    if (!node?.poller) {
      res.status(409).json({ error: { code: 'OAUTH2_INVALID_INPUT', message: deps.translate('errors.previewNotDeployed') } });
      return;
    }
    node.poller
      .preview()
      .then((preview) => {
        const counts = { created: 0, updated: 0, deleted: 0 };
        for (const change of preview.changes) counts[change.event] += 1;
        res.json({
          counts,
          changes: preview.changes.slice(0, PREVIEW_LIMIT),
          total: preview.changes.length,
          truncated: preview.changes.length > PREVIEW_LIMIT,
          stats: preview.stats,
          firstPoll: preview.firstPoll,
        });
      })
      .catch((err: unknown) => {
        const code = err instanceof OAuth2Error ? err.code : 'OAUTH2_REQUEST_FAILED';
        res.status(code === 'OAUTH2_INVALID_CONFIG' || code === 'OAUTH2_INVALID_INPUT' ? 400 : 502).json({ error: { code, message: message(err) } });
      });
  });
}
