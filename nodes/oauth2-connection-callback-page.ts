import { randomBytes } from 'node:crypto';
import type { Response } from 'express';
import type { ErrorParams } from './lib/errors';

/** `awaitsDeploy`: the login was made with the dialog's settings, not the deployed ones, and is used once they are. */
export type CallbackOutcome = { ok: true; id: string; awaitsDeploy?: boolean } | { ok: false; id?: string; code: string; message: string };

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

/** JSON safe inside an inline <script>: no `</script>` or HTML comment can close it early. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');
}

/**
 * The page the provider's redirect lands on. It tells the editor that opened it (postMessage restricted to
 * this page's own origin, which is the editor's) and closes itself. It never redirects anywhere: a callback
 * cannot be used to send a browser to a caller-chosen URL. Strict CSP with a nonce for its one script.
 */
export function renderCallbackPage(
  res: Response,
  status: number,
  outcome: CallbackOutcome,
  translate: (key: string, params?: ErrorParams) => string,
): void {
  const nonce = randomBytes(16).toString('base64');
  const title = translate('callback.title');
  const heading = outcome.ok ? translate('callback.success') : translate('callback.failure');
  const detail = outcome.ok ? '' : `<p id="detail">${escapeHtml(outcome.message)}</p><p><code>${escapeHtml(outcome.code)}</code></p>`;
  const message = { type: 'oauth2-connection-login', ...outcome };
  const html = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:3em auto;max-width:32em;padding:0 1em;color:#333}
h1{font-size:1.3em;color:${outcome.ok ? '#2b7a0b' : '#b00020'}}code{background:#f3f3f3;padding:.1em .3em}button{font-size:1em;padding:.4em 1.2em}</style>
</head><body>
<h1 id="result">${escapeHtml(heading)}</h1>
${detail}
<p><button type="button" id="close">${escapeHtml(translate('callback.close'))}</button></p>
<script nonce="${nonce}">
(function () {
  var message = ${scriptJson(message)};
  try { if (window.opener) { window.opener.postMessage(message, window.location.origin); } } catch (e) {}
  document.getElementById('close').addEventListener('click', function () { window.close(); });
  ${outcome.ok ? 'setTimeout(function () { window.close(); }, 1200);' : ''}
})();
</script>
</body></html>`;
  res.status(status);
  res.set('content-type', 'text/html; charset=utf-8');
  res.set('content-security-policy', `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`);
  res.set('x-content-type-options', 'nosniff');
  res.send(html);
}
