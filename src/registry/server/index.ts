/** `berth registry serve` and `berth registry gc`: an OCI Distribution v1.1 registry on the local filesystem. */
export { startRegistry, type RegistryServer } from './server.js';
export { loadConfigFile, parseAddr, DEFAULT_ADDR, type RegistryConfig } from './config.js';
export { collectGarbage, type GcReport } from './gc.js';
export { RegistryStore } from './storage.js';
export { RegistryError, type ErrorCode } from './spec.js';
