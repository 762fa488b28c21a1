/**
 * The few syscalls Node lacks, called through koffi (libc FFI). Every wrapper
 * throws a SysError carrying errno, so callers can test `err.code === 'EBUSY'`.
 */
import koffi from 'koffi';
import fs from 'node:fs';
import os from 'node:os';

const libc = koffi.load('libc.so.6');

const c = {
  mount: libc.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)'),
  umount2: libc.func('int umount2(const char *target, int flags)'),
  mknod: libc.func('int mknod(const char *path, uint32 mode, uint64 dev)'),
  lsetxattr: libc.func('int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)'),
  lgetxattr: libc.func('long lgetxattr(const char *path, const char *name, _Out_ uint8_t *value, size_t size)'),
  llistxattr: libc.func('long llistxattr(const char *path, _Out_ uint8_t *list, size_t size)'),
  statfs: libc.func('int statfs(const char *path, _Out_ uint8_t *buf)'),
  lchown: libc.func('int lchown(const char *path, uint32 owner, uint32 group)'),
  ioctl: libc.func('int ioctl(int fd, unsigned long request, ...)'),
  syscall: libc.func('long syscall(long number, ...)'),
};

export class SysError extends Error {
  constructor(
    readonly syscall: string,
    readonly errno: number,
    readonly code: string,
    readonly path?: string,
  ) {
    super(`${syscall} ${path ?? ""}: ${code}`);
  }
}

const errnoNames = new Map<number, string>(
  Object.entries(os.constants.errno).map(([name, num]) => [num, name]),
);

function check(ret: number | bigint, syscall: string, path?: string): number {
  const n = Number(ret);
  if (n < 0) {
    const errno = koffi.errno();
    throw new SysError(syscall, errno, errnoNames.get(errno) ?? `errno ${errno}`, path);
  }
  return n;
}

export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_NOEXEC = 0x8;
export const MS_REMOUNT = 0x20;
export const MS_BIND = 0x1000;
export const MS_REC = 0x4000;
export const MS_PRIVATE = 0x40000;
export const MNT_DETACH = 0x2;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;

export function mount(source: string, target: string, fstype: string | null, flags: number, data: string | null): void {
  check(c.mount(source, target, fstype, flags, data), 'mount', target);
}

export function umount(target: string, flags = 0): void {
  check(c.umount2(target, flags), 'umount2', target);
}

export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffn) << 8n) | (mi & 0xffn) | ((mi & ~0xffn) << 12n) | ((ma & ~0xfffn) << 32n);
}

/** mknod(2); `mode` includes the file type bits (S_IFCHR, S_IFBLK, S_IFIFO). */
export function mknod(path: string, mode: number, major = 0, minor = 0): void {
  check(c.mknod(path, mode, makedev(major, minor)), 'mknod', path);
}

export function lchown(path: string, uid: number, gid: number): void {
  check(c.lchown(path, uid, gid), 'lchown', path);
}

export function setxattr(path: string, name: string, value: Buffer): void {
  check(c.lsetxattr(path, name, value, value.length, 0), 'lsetxattr', path);
}

/**
 * One buffer for every xattr read (the calls are synchronous): a zeroed 64 KiB per call was most of
 * the cost of reading a small file's xattrs when packing a layer. Values are copied out of it.
 */
const xattrBuf = Buffer.alloc(65536);

export function getxattr(path: string, name: string): Buffer | null {
  const buf = xattrBuf;
  try {
    const n = check(c.lgetxattr(path, name, buf, buf.length), 'lgetxattr', path);
    return Buffer.from(buf.subarray(0, n));
  } catch (err) {
    if (err instanceof SysError && (err.code === 'ENODATA' || err.code === 'ENOTSUP')) return null;
    throw err;
  }
}

export function listxattr(path: string): string[] {
  const buf = xattrBuf;
  let n: number;
  try {
    n = check(c.llistxattr(path, buf, buf.length), 'llistxattr', path);
  } catch (err) {
    if (err instanceof SysError && err.code === 'ENOTSUP') return [];
    throw err;
  }
  return n === 0 ? [] : buf.toString('latin1', 0, n).split('\0').filter(Boolean);
}

/** The filesystem magic (f_type) of the filesystem holding `path`. */
export function fsType(path: string): number {
  const buf = Buffer.alloc(120);
  check(c.statfs(path, buf), 'statfs', path);
  return Number(buf.readBigInt64LE(0));
}

const FS_IOC_GETFLAGS = 0x80086601;
const FS_IOC_SETFLAGS = 0x40086602;
/** ext2/3/4 "top of a directory hierarchy": the Orlov allocator spreads its subdirectories over block groups. */
export const FS_TOPDIR_FL = 0x00020000;

/** Sets inode flags (chattr) on a file or directory, keeping the ones it has. */
export function addInodeFlags(path: string, flags: number): void {
  const fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const buf = Buffer.alloc(4);
    check(c.ioctl(fd, FS_IOC_GETFLAGS, 'uint8_t *', buf), 'ioctl(FS_IOC_GETFLAGS)', path);
    if ((buf.readInt32LE(0) & flags) === flags) return;
    buf.writeInt32LE(buf.readInt32LE(0) | flags);
    check(c.ioctl(fd, FS_IOC_SETFLAGS, 'uint8_t *', buf), 'ioctl(FS_IOC_SETFLAGS)', path);
  } finally {
    fs.closeSync(fd);
  }
}

export const FS_MAGIC: Record<number, string> = {
  0xef53: 'extfs',
  0x9123683e: 'btrfs',
  0x58465342: 'xfs',
  0x01021994: 'tmpfs',
  0x794c7630: 'overlayfs',
  0xe0f5e1e2: 'erofs',
};

// Unix SOCK_SEQPACKET client sockets (conmon's attach socket): Node's net module cannot open them.
const sock = {
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  connect: libc.func('int connect(int fd, const uint8_t *addr, uint32 len)'),
  shutdown: libc.func('int shutdown(int fd, int how)'),
};
const AF_UNIX = 1;
const SOCK_SEQPACKET = 5;
const SOCK_CLOEXEC = 0o2000000;
export const SHUT_RD = 0;
export const SHUT_WR = 1;
export const SHUT_RDWR = 2;

/** A connected, blocking SOCK_SEQPACKET unix socket fd; read/write it with fs.read/fs.write, close with fs.close. */
export function seqpacketConnect(socketPath: string): number {
  const addr = Buffer.alloc(110);
  addr.writeUInt16LE(AF_UNIX, 0);
  const p = Buffer.from(socketPath);
  if (p.length >= 108) throw new SysError('connect', 36, 'ENAMETOOLONG', socketPath);
  p.copy(addr, 2);
  const fd = check(sock.socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), 'socket', socketPath);
  try {
    check(sock.connect(fd, addr, 2 + p.length + 1), 'connect', socketPath);
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
  return fd;
}

/** shutdown(2): SHUT_WR tells the peer "no more input" while we keep reading. */
export function shutdown(fd: number, how: number): void {
  check(sock.shutdown(fd, how), 'shutdown');
}

// glibc's allocator: what Node and its threads free stays in malloc's arenas unless asked back.
const malloc = {
  mallopt: libc.func('int mallopt(int param, int value)'),
  trim: libc.func('int malloc_trim(size_t pad)'),
};
const M_MMAP_THRESHOLD = -3;

/**
 * Blocks of at least `bytes` get their own mapping, returned to the kernel when freed. Setting it
 * also stops glibc from raising the threshold after each large free (by default it rises to the
 * largest block freed, up to 32 MiB, and later large blocks then fragment the arenas).
 */
export function setMmapThreshold(bytes: number): void {
  if (malloc.mallopt(M_MMAP_THRESHOLD, bytes) !== 1) throw new SysError('mallopt', 22, 'EINVAL');
}

/** malloc_trim(0): gives the free pages of every arena back to the kernel. */
export function mallocTrim(): void {
  malloc.trim(0);
}

/**
 * V8's embedder API, which the node binary exports for native addons. Only memory-pressure
 * notification is used: from a thread other than the isolate's it makes V8 collect on its own
 * thread at the next safe point, the way Chrome reacts to a low-memory signal: compacting old space,
 * shrinking the young generation and unmapping the pages it pools. (Called on the isolate's own
 * thread through koffi, a collection would run on koffi's call stack, which V8 cannot scan.)
 */
const v8api = (() => {
  try {
    const self = koffi.load(null as unknown as string);
    return {
      currentIsolate: self.func('void *_ZN2v87Isolate10GetCurrentEv()'),
      pressure: self.func('void _ZN2v87Isolate26MemoryPressureNotificationENS_19MemoryPressureLevelE(void *isolate, int level)'),
    };
  } catch {
    return null;
  }
})();
const PRESSURE_NONE = 0;
const PRESSURE_CRITICAL = 2;

/**
 * V8's most thorough collection: critical memory pressure, signalled from a pool thread, then back
 * to none once V8 has answered it (a level left at critical would make every later collection a
 * slow, shrinking one). Resolves false where the node binary lacks the API.
 */
export function collectUnderPressure(): Promise<boolean> {
  const api = v8api;
  if (!api) return Promise.resolve(false);
  const isolate: unknown = api.currentIsolate();
  return new Promise((resolve) => {
    api.pressure.async(isolate, PRESSURE_CRITICAL, (err: unknown) => {
      // V8 collects at the first stack check on its thread: by the time this callback's JS runs.
      // The level is a plain store on this thread (no collection when lowered).
      setImmediate(() => {
        api.pressure(isolate, PRESSURE_NONE);
        resolve(!err);
      });
    });
  });
}

// open_tree, mount_setattr and move_mount have the same numbers on every architecture Linux added them to.
const SYS_OPEN_TREE = 428;
const SYS_MOVE_MOUNT = 429;
const SYS_MOUNT_SETATTR = 442;
const AT_FDCWD = -100;
const OPEN_TREE_CLONE = 1;
const OPEN_TREE_CLOEXEC = 0o2000000;
const AT_RECURSIVE = 0x8000;
const AT_EMPTY_PATH = 0x1000;
const MOVE_MOUNT_F_EMPTY_PATH = 0x4;
const MOUNT_ATTR_IDMAP = 0x100000;

/**
 * Mount `source` again on `target` as an idmapped mount: files appear owned through the uid/gid
 * maps of the user namespace `usernsFd` (Linux ≥ 5.12, on filesystems that allow it, e.g. ext4, xfs, btrfs, tmpfs).
 */
export function idmappedBind(source: string, target: string, usernsFd: number): void {
  const fd = check(c.syscall(SYS_OPEN_TREE, 'int', AT_FDCWD, 'const char *', source, 'unsigned int', OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE), 'open_tree', source);
  try {
    const attr = Buffer.alloc(32);
    attr.writeBigUInt64LE(BigInt(MOUNT_ATTR_IDMAP), 0);
    attr.writeBigUInt64LE(BigInt(usernsFd), 24);
    check(c.syscall(SYS_MOUNT_SETATTR, 'int', fd, 'const char *', '', 'unsigned int', AT_EMPTY_PATH | AT_RECURSIVE, 'uint8_t *', attr, 'size_t', 32), 'mount_setattr', source);
    check(c.syscall(SYS_MOVE_MOUNT, 'int', fd, 'const char *', '', 'int', AT_FDCWD, 'const char *', target, 'unsigned int', MOVE_MOUNT_F_EMPTY_PATH), 'move_mount', target);
  } finally {
    fs.closeSync(fd);
  }
}

let x32: boolean | undefined;
/** Whether this x86_64 kernel runs x32-ABI syscalls (getpid with __X32_SYSCALL_BIT; ENOSYS when it does not). */
export function x32Supported(): boolean {
  if (x32 === undefined) x32 = os.arch() === 'x64' && Number(c.syscall(0x40000000 + 39)) > 0;
  return x32;
}

// Network namespaces and rtnetlink (src/network/netlink.ts): a netns made and links configured
// without a process per step. unshare/setns act on the calling thread only, so the main thread
// steps into a namespace and back within one synchronous call; libuv's threads stay where they are.
const ns = {
  unshare: libc.func('int unshare(int flags)'),
  setns: libc.func('int setns(int fd, int nstype)'),
  send: libc.func('long send(int fd, const uint8_t *buf, size_t len, int flags)'),
  recv: libc.func('long recv(int fd, _Out_ uint8_t *buf, size_t len, int flags)'),
};
export const CLONE_NEWNET = 0x40000000;
const AF_NETLINK = 16;
const SOCK_RAW = 3;
const NETLINK_ROUTE = 0;

export function unshare(flags: number): void {
  check(ns.unshare(flags), 'unshare');
}

export function setns(fd: number, nstype: number): void {
  check(ns.setns(fd, nstype), 'setns');
}

/** A NETLINK_ROUTE socket of the calling thread's network namespace (a socket keeps its namespace for life). */
export function netlinkSocket(): number {
  return check(sock.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), 'socket');
}

export function send(fd: number, buf: Buffer): number {
  return check(ns.send(fd, buf, buf.length, 0), 'send');
}

export function recv(fd: number, buf: Buffer): number {
  return check(ns.recv(fd, buf, buf.length, 0), 'recv');
}
