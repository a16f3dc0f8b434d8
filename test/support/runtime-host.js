'use strict';
// Child-process host for an embedded Node-RED (Node-RED cannot be started twice in one process). Started by
// test/support/runtime.ts with its options in NR_HOST_OPTIONS; reports over IPC: {type:'ready'}, {type:'log'}.
const util = require('node:util');
const { startEmbedded } = require('../../runtime/dist/embedded.js');

const options = JSON.parse(process.env.NR_HOST_OPTIONS || '{}');

function send(message) {
  if (process.connected) process.send(message);
}

startEmbedded({
  ...options,
  logLevel: options.logLevel || 'fatal',
  logHandler: (record) => {
    const text = typeof record.msg === 'string' ? record.msg : util.inspect(record.msg, { depth: 5 });
    send({ type: 'log', level: record.level, text, node: record.type, id: record.id, event: typeof record.event === 'string' ? record.event : undefined });
  },
}).then((runtime) => {
  send({ type: 'ready', url: runtime.url, adminUrl: runtime.adminUrl, port: runtime.port });
  const stop = () => runtime.stop().then(() => process.exit(0), () => process.exit(1));
  process.on('message', (message) => {
    if (message && message.type === 'stop') stop();
  });
  process.once('SIGTERM', stop);
}, (err) => {
  send({ type: 'error', message: String(err && err.stack || err) });
  process.exit(1);
});

process.on('unhandledRejection', (reason) => {
  send({ type: 'unhandledRejection', text: util.inspect(reason) });
});
process.on('uncaughtException', (err) => {
  send({ type: 'uncaughtException', text: util.inspect(err) });
});
