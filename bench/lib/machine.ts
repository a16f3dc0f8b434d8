import * as os from 'node:os';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface Machine {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  platform: string;
  nodeRed: string;
  peer: string;
}

function packageVersion(dir: string): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function machine(root: string): Machine {
  const cpus = os.cpus();
  return {
    cores: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    nodeRed: packageVersion(path.dirname(require.resolve('node-red/package.json', { paths: [root] }))),
    peer: packageVersion(path.join(root, 'bench', 'node_modules', 'node-red-contrib-oauth2')),
  };
}
