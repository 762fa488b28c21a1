/** The pure parts of top, stats and update: ps parsing, the docker CLI's figures, dockerd's update checks. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePs } from '../../src/runtime/top.js';
import { statsRow } from '../../src/cli/commands/observe.js';
import { applyUpdate } from '../../src/container/update.js';
import type { Container } from '../../src/container/types.js';

test('parsePs keeps the rows of the given pids and the whole command line', () => {
  const out = 'UID PID PPID C STIME TTY TIME CMD\nroot 10 1 0 07:31 ? 00:00:00 sh -c sleep 1 & sleep 2\nroot 11 10 0 07:31 ? 00:00:00 sleep 2\nroot 99 1 0 07:31 ? 00:00:00 other\n';
  const r = parsePs(out, [10, 11]);
  assert.deepEqual(r.Titles, ['UID', 'PID', 'PPID', 'C', 'STIME', 'TTY', 'TIME', 'CMD']);
  assert.deepEqual(r.Processes.map((p) => p.at(-1)), ['sh -c sleep 1 & sleep 2', 'sleep 2']);
  assert.throws(() => parsePs('USER COMMAND\nroot x\n', [1]), /Couldn't find PID field in ps output/);
});

test('statsRow computes CPU % from the pair and leaves the inactive page cache out', () => {
  const row = statsRow({
    read: '2026-12-03T00:00:01Z', id: 'a'.repeat(64), name: '/web',
    cpu_stats: { cpu_usage: { total_usage: 3e8 }, system_cpu_usage: 2e9 + 1e9, online_cpus: 2 },
    precpu_stats: { cpu_usage: { total_usage: 1e8 }, system_cpu_usage: 1e9 },
    memory_stats: { usage: 30 * 1024 * 1024, limit: 100 * 1024 * 1024, stats: { total_inactive_file: 10 * 1024 * 1024 } },
    blkio_stats: { io_service_bytes_recursive: [{ op: 'Read', value: 4096 }, { op: 'Write', value: 2e6 }, { op: 'Total', value: 2004096 }] },
    pids_stats: { current: 3 },
    networks: { eth0: { rx_bytes: 1500, tx_bytes: 0 } },
  });
  assert.equal(row.CPUPerc, '20.00%'); // 2e8 of 2e9 host ns, times 2 CPUs
  assert.equal(row.MemUsage, '20MiB / 100MiB');
  assert.equal(row.MemPerc, '20.00%');
  assert.equal(row.BlockIO, '4.1kB / 2MB');
  assert.equal(row.NetIO, '1.5kB / 0B');
  assert.equal(row.PIDs, '3');
  assert.equal(row.ID, 'aaaaaaaaaaaa');
});

function container(h: Partial<Container['hostConfig']> = {}): Container {
  return { hostConfig: { Memory: 0, MemorySwap: 0, NanoCpus: 0, CpuQuota: 0, CpuPeriod: 0, CpuShares: 0, PidsLimit: null, AutoRemove: false, RestartPolicy: { Name: 'no', MaximumRetryCount: 0 }, ...h } } as Container;
}

test('applyUpdate changes only what was asked and refuses what dockerd refuses', () => {
  const next = applyUpdate(container({ Memory: 64 << 20 }), { Memory: 0, CpuShares: 512, PidsLimit: 10, RestartPolicy: { Name: 'always' } });
  assert.equal(next.Memory, 64 << 20);
  assert.equal(next.CpuShares, 512);
  assert.equal(next.PidsLimit, 10);
  assert.deepEqual(next.RestartPolicy, { Name: 'always', MaximumRetryCount: 0 });
  assert.equal(applyUpdate(container({ PidsLimit: 10 }), { PidsLimit: -1 }).PidsLimit, null);
  assert.throws(() => applyUpdate(container(), { Memory: 1 << 20 }), /Minimum memory limit allowed is 6MB/);
  assert.throws(() => applyUpdate(container(), { MemorySwap: 64 << 20 }), /always set the Memory limit/);
  assert.throws(() => applyUpdate(container({ NanoCpus: 1e9 }), { CpuQuota: 50000 }), /NanoCPUs has already been set/);
  assert.throws(() => applyUpdate(container({ AutoRemove: true }), { RestartPolicy: { Name: 'always' } }), /AutoRemove is enabled/);
  assert.throws(() => applyUpdate(container(), { RestartPolicy: { Name: 'sometimes' } }), /unknown policy 'sometimes'/);
  assert.throws(() => applyUpdate(container(), { BlkioWeight: 300 }), /--blkio-weight is not supported yet/);
});
