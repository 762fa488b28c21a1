/** Settings of `berth registry serve`, from flags or a YAML/JSON file with the same keys. */
import fs from 'node:fs';
import YAML from 'yaml';

export interface RegistryConfig {
  /** HOST:PORT to listen on; default 127.0.0.1:5000. Port 0 picks a free one. */
  addr?: string;
  /** Storage root directory. */
  root: string;
  /** htpasswd file with bcrypt entries; enables Basic auth. */
  htpasswd?: string;
  tlsCert?: string;
  tlsKey?: string;
  /** Every write answers 405 UNSUPPORTED. */
  readOnly?: boolean;
  /** Log one line per request (default true). */
  logRequests?: boolean;
}

export const DEFAULT_ADDR = '127.0.0.1:5000';

const KEYS: Record<string, 'addr' | 'root' | 'htpasswd' | 'tlsCert' | 'tlsKey' | 'readOnly'> = {
  addr: 'addr',
  root: 'root',
  htpasswd: 'htpasswd',
  'tls-cert': 'tlsCert',
  tlsCert: 'tlsCert',
  'tls-key': 'tlsKey',
  tlsKey: 'tlsKey',
  'read-only': 'readOnly',
  readOnly: 'readOnly',
};

/** Reads a config file (YAML is a superset of JSON, so one parser serves both). Unknown keys are an error. */
export function loadConfigFile(file: string): Partial<RegistryConfig> {
  const doc: unknown = YAML.parse(fs.readFileSync(file, 'utf8'));
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new Error(`${file}: expected a mapping of settings`);
  const out: Partial<RegistryConfig> = {};
  for (const [k, v] of Object.entries(doc as Record<string, unknown>)) {
    const key = KEYS[k];
    if (!key) throw new Error(`${file}: unknown setting "${k}"`);
    if (key === 'readOnly') {
      if (typeof v !== 'boolean') throw new Error(`${file}: "${k}" must be true or false`);
      out.readOnly = v;
    } else {
      if (typeof v !== 'string') throw new Error(`${file}: "${k}" must be a string`);
      out[key] = v;
    }
  }
  return out;
}

export function parseAddr(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(addr);
  if (!m) throw new Error(`invalid address "${addr}" (want HOST:PORT)`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`invalid port in "${addr}"`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}
