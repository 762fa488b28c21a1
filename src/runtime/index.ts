/**
 * runtime/: turns a prepared rootfs into a running, namespaced, cgroup-limited
 * process that outlives the daemon.
 *
 *   buildSpec(options)        → OCI config.json (Docker's defaults)
 *   createRuntime(...).create → conmon + `runc create`; start, kill, state, waitExit, delete
 *   readLog / logOffset       → the k8s-file log conmon writes
 *   createExecRuntime(...).exec → another process in a running container (berth-exec, runc exec or conmon --exec)
 *
 * See conmon.ts for the per-container lifecycle and the files it keeps on disk.
 */
export { buildSpec, cgroupLimits, computeCapabilities, hostCapabilities, DEFAULT_CAPS, DEFAULT_PATH } from './spec.js';
export type { ResourceLimits, SpecOptions, OciSpec, OciMount, OciProcess, OciResources, OciNamespace } from './spec.js';
export { resolveUser } from './user.js';
export { createRuntime } from './conmon.js';
export type { Runtime, RuntimeOptions, RuntimeStatus, CreateIO } from './conmon.js';
export { readLog, logOffset } from './logs.js';
export type { LogEntry, ReadLogOptions } from './logs.js';
export { cgroupParentCleanup, cgroupVersion } from './cgroups.js';
export { readCgroupSample, cgroupPids, systemCpuNs, onlineCpus, netCounters } from './stats.js';
export type { CgroupSample, NetCounters, BlkioEntry } from './stats.js';
export { createExecRuntime } from './exec.js';
export { startFailure, commandFailureCode } from './conmon.js';
export type { ExecRuntime, ExecRuntimeOptions, ExecIO, ExecProcess } from './exec.js';
