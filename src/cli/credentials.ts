/**
 * Registry credentials, kept like docker's config.json ({"auths": {server: {auth}}})
 * in $BERTH_CONFIG/config.json (default ~/.berth/config.json), mode 0600.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const DEFAULT_SERVER = 'https://index.docker.io/v1/';

interface ConfigFile {
  auths?: Record<string, { auth?: string; identitytoken?: string }>;
  [other: string]: unknown;
}

function configPath(env: NodeJS.ProcessEnv): string {
  return path.join(env.BERTH_CONFIG || path.join(env.HOME || os.homedir(), '.berth'), 'config.json');
}

function read(env: NodeJS.ProcessEnv): ConfigFile {
  try {
    return JSON.parse(fs.readFileSync(configPath(env), 'utf8')) as ConfigFile;
  } catch {
    return {};
  }
}

function write(env: NodeJS.ProcessEnv, config: ConfigFile): void {
  const file = configPath(env);
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(config, null, '\t') + '\n', { mode: 0o600 });
  fs.renameSync(tmp, file);
}

/** The key docker uses for a registry: the Hub's legacy URL, otherwise host[:port]. */
export function serverKey(registry: string | undefined): string {
  if (!registry) return DEFAULT_SERVER;
  const host = registry.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
  return host === 'docker.io' || host === 'index.docker.io' || host === 'registry-1.docker.io' ? DEFAULT_SERVER : host;
}

export interface Credentials { username: string; password: string; identitytoken?: string; serveraddress: string }

export function loadCredentials(env: NodeJS.ProcessEnv, registry: string | undefined): Credentials | undefined {
  const key = serverKey(registry);
  const entry = read(env).auths?.[key];
  if (!entry?.auth) return undefined;
  const plain = Buffer.from(entry.auth, 'base64').toString('utf8');
  const colon = plain.indexOf(':');
  if (colon < 0) return undefined;
  return { username: plain.slice(0, colon), password: plain.slice(colon + 1), identitytoken: entry.identitytoken, serveraddress: key };
}

export function saveCredentials(env: NodeJS.ProcessEnv, c: Credentials): void {
  const config = read(env);
  config.auths = { ...config.auths, [serverKey(c.serveraddress)]: { auth: Buffer.from(`${c.username}:${c.password}`).toString('base64'), ...(c.identitytoken ? { identitytoken: c.identitytoken } : {}) } };
  write(env, config);
}

/** Returns false when there was nothing to remove. */
export function removeCredentials(env: NodeJS.ProcessEnv, registry: string | undefined): boolean {
  const config = read(env);
  const key = serverKey(registry);
  if (!config.auths?.[key]) return false;
  delete config.auths[key];
  write(env, config);
  return true;
}

/** The X-Registry-Auth header value for an image's registry: base64url JSON, "{}" when anonymous. */
export function registryAuthHeader(env: NodeJS.ProcessEnv, registry: string | undefined): string {
  const c = loadCredentials(env, registry);
  return Buffer.from(JSON.stringify(c ?? {})).toString('base64url');
}
