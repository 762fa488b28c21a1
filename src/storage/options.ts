/** A container's `--storage-opt` (HostConfig.StorageOpt) as the snapshotter's PrepareOptions. */
import { InvalidParameter } from '../errors.js';
import type { PrepareOptions } from './index.js';

/** go-units RAMInBytes, as dockerd reads `size=`: "64m", "10G", "1.5g", "100k" → bytes (binary units). */
function sizeInBytes(s: string): number {
  const m = /^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$/.exec(s.trim());
  if (!m) throw new InvalidParameter(`invalid size: '${s}'`);
  const mult: Record<string, number> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };
  return Math.trunc(Number(m[1]) * (m[2] ? mult[m[2].toLowerCase()]! : 1));
}

/** Checks the keys (only `size` exists) and values; Docker's "Unknown option" for any other key. */
export function prepareOptionsOf(storageOpt: Record<string, string> | null | undefined): PrepareOptions {
  const out: PrepareOptions = {};
  for (const [key, value] of Object.entries(storageOpt ?? {})) {
    if (key.toLowerCase() !== 'size') throw new InvalidParameter(`Unknown option ${key}`);
    if (typeof value !== 'string') throw new InvalidParameter(`invalid storage option ${key}: want a string`);
    out.size = sizeInBytes(value);
    if (out.size <= 0) throw new InvalidParameter(`invalid size: '${value}'`);
  }
  return out;
}
