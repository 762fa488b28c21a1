/**
 * readdir(3) with the raw d_type the filesystem reports. Node's own
 * readdir(withFileTypes) quietly lstat()s entries whose type is DT_UNKNOWN,
 * which hides exactly what overlayfs needs to know: does the fs fill d_type?
 */
import koffi from 'koffi';
import os from 'node:os';
import { SysError } from './index.js';

const libc = koffi.load('libc.so.6');
const Dirent64 = koffi.struct('berth_dirent64', {
  d_ino: 'uint64',
  d_off: 'int64',
  d_reclen: 'uint16',
  d_type: 'uint8',
  d_name: koffi.array('char', 256, 'String'),
});
const DIR = koffi.opaque('berth_DIR');
const c = {
  opendir: libc.func('opendir', koffi.pointer(DIR), ['const char *']),
  readdir64: libc.func('readdir64', koffi.pointer(Dirent64), [koffi.pointer(DIR)]),
  closedir: libc.func('closedir', 'int', [koffi.pointer(DIR)]),
};

export const DT_UNKNOWN = 0;

function fail(syscall: string, path: string): never {
  const errno = koffi.errno();
  const name = Object.entries(os.constants.errno).find(([, n]) => n === errno)?.[0] ?? `errno ${errno}`;
  throw new SysError(syscall, errno, name, path);
}

/** Names and raw d_type values of a directory's entries (without "." and ".."). */
export function readdirTypes(path: string): { name: string; type: number }[] {
  const dir: unknown = c.opendir(path);
  if (!dir) fail('opendir', path);
  const out: { name: string; type: number }[] = [];
  try {
    for (;;) {
      koffi.errno(0);
      const ent: unknown = c.readdir64(dir);
      if (!ent) {
        if (koffi.errno() !== 0) fail('readdir', path);
        break;
      }
      const d = koffi.decode(ent, Dirent64) as { d_type: number; d_name: string };
      if (d.d_name !== '.' && d.d_name !== '..') out.push({ name: d.d_name, type: d.d_type });
    }
  } finally {
    c.closedir(dir);
  }
  return out;
}
