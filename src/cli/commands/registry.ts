/**
 * `berth registry serve` (an OCI Distribution registry in the foreground) and
 * `berth registry gc`. Unlike the other commands these never talk to berthd: the
 * registry is its own process over its own root directory.
 */
import type { Command } from '../command.js';
import { StatusError } from '../command.js';
import type { Parsed } from '../flags.js';
import { collectGarbage, loadConfigFile, startRegistry, type RegistryConfig } from '../../registry/server/index.js';
import { bytesSize } from '../format.js';

function configFrom(p: Parsed): RegistryConfig {
  let file: Partial<RegistryConfig> = {};
  const cfgPath = p.str('config');
  if (cfgPath) {
    try {
      file = loadConfigFile(cfgPath);
    } catch (e) {
      throw new StatusError(`invalid config: ${(e as Error).message}`, 1);
    }
  }
  // Flags win over the file.
  const cfg: Partial<RegistryConfig> = { ...file };
  if (p.str('addr') !== undefined) cfg.addr = p.str('addr');
  if (p.str('root') !== undefined) cfg.root = p.str('root');
  if (p.str('htpasswd') !== undefined) cfg.htpasswd = p.str('htpasswd');
  if (p.str('tls-cert') !== undefined) cfg.tlsCert = p.str('tls-cert');
  if (p.str('tls-key') !== undefined) cfg.tlsKey = p.str('tls-key');
  if (p.has('read-only')) cfg.readOnly = p.bool('read-only');
  if (!cfg.root) throw new StatusError('berth registry: --root DIR (or "root" in --config) is required', 125);
  return cfg as RegistryConfig;
}

export const serve: Command = {
  name: 'serve',
  usage: 'serve [OPTIONS]',
  description: 'Run an OCI registry in the foreground',
  flags: [
    { long: 'addr', kind: 'string', help: 'Address to listen on (HOST:PORT)', default: '127.0.0.1:5000' },
    { long: 'root', kind: 'string', help: 'Storage directory' },
    { long: 'htpasswd', kind: 'string', help: 'htpasswd file (bcrypt) enabling basic auth' },
    { long: 'tls-cert', kind: 'string', help: 'TLS certificate (PEM)' },
    { long: 'tls-key', kind: 'string', help: 'TLS private key (PEM)' },
    { long: 'read-only', kind: 'bool', help: 'Refuse every write' },
    { long: 'config', kind: 'string', help: 'YAML or JSON file with the same settings' },
  ],
  args: { max: 0 },
  async run(ctx, p) {
    const cfg = configFrom(p);
    let srv;
    try {
      srv = await startRegistry(cfg);
    } catch (e) {
      throw new StatusError(`berth registry: ${(e as Error).message}`, 1);
    }
    ctx.err.write(`berth registry listening on ${srv.url} (root ${cfg.root}${cfg.readOnly ? ', read-only' : ''}${cfg.htpasswd ? ', basic auth' : ''})\n`);
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    ctx.err.write(`berth registry: ${signal}, stopping\n`);
    // In-flight uploads get a few seconds to finish; then their connections are cut.
    await Promise.race([srv.close(), new Promise((r) => setTimeout(r, 5000).unref())]);
    return 0;
  },
};

export const gc: Command = {
  name: 'gc',
  usage: 'gc [OPTIONS]',
  description: 'Delete blobs no manifest references (run with the registry stopped or read-only)',
  flags: [
    { long: 'root', kind: 'string', help: 'Storage directory' },
    { long: 'config', kind: 'string', help: 'YAML or JSON file with the same settings as serve' },
    { long: 'dry-run', kind: 'bool', help: 'Only print what would be deleted' },
  ],
  args: { max: 0 },
  async run(ctx, p) {
    const cfg = configFrom(p);
    const r = await collectGarbage(cfg.root, { dryRun: p.bool('dry-run') });
    const verb = r.dryRun ? 'would delete' : 'deleted';
    for (const l of r.linksRemoved) ctx.out.write(`${r.dryRun ? 'would unlink' : 'unlinked'} ${l.repository}@${l.digest}\n`);
    for (const b of r.deleted) ctx.out.write(`${verb} ${b.digest} (${b.size} bytes)\n`);
    ctx.out.write(`${r.manifests} manifests, ${r.kept} blobs kept; ${verb} ${r.deleted.length} blobs, ${bytesSize(r.bytesFreed)} ${r.dryRun ? 'to free' : 'freed'}\n`);
    return 0;
  },
};
