/**
 * Benchmark: what networking costs, berthd against dockerd side by side in one run.
 *
 *   node --import tsx bench/network.ts [--with-dockerd] [-n 30] [--warmup 3]
 *
 * Both engines (berthd always; dockerd when Debian's docker.io is installed, or installed under
 * --with-dockerd) run at once, each on its own dirs and its own bridge, and take turns at every
 * iteration (the order flips each time), so both see the same load from whatever else runs:
 *   1. `docker run --rm busybox true` on the default bridge and with `--network none`, N each:
 *      min/median/max, and the bridge's extra cost (median bridge − median none);
 *   2. `docker network create` + `docker network rm` of a user network, N times;
 *   3. `docker run -d -p 127.0.0.1::8080 busybox httpd` until `curl` of the published port
 *      answers, then `rm -f` (not timed), N times.
 * berthd's own mechanism (netns + veth + addresses + route, then teardown) is timed alone after.
 * Traffic only between the host's loopback and the engines' own bridges. Prints a table and a JSON line.
 */
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { testBip, testImages } from '../test/harness.js';
import os from 'node:os';
import path from 'node:path';
import { createSandbox, deleteLink, destroySandbox, ensureBridge } from '../src/network/link.js';
import { benchArgs, ensureDockerd, formatTable, loadBusybox, mustRun, must, onExitSync, startBerth, startDockerd, type Engine } from './common.js';

interface Stats { min: number; median: number; max: number }
interface Result {
  engine: string;
  /** berthd's own mechanism, without the CLI and runc: netns + veth + addresses + route, then teardown. */
  stack?: Stats;
  version?: string;
  bridge?: Stats;
  none?: Stats;
  overheadMs?: number;
  netCreateRm?: Stats;
  publishCurl?: Stats;
  error?: string;
}

function stats(xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  return { min: s[0]!, median: mid, max: s[s.length - 1]! };
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function curlOk(url: string): Promise<boolean> {
  return new Promise((resolve) => execFile('curl', ['-sf', '--max-time', '2', url], (err) => resolve(!err)));
}

const HTTPD = ['busybox', 'sh', '-c', 'mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www'];

/** One timed operation of an engine's; `after` (not timed) cleans up. */
type Step = (engine: Engine) => Promise<{ seconds: number; after?: () => Promise<unknown> }>;

const docker = (engine: Engine, args: string[]) => engine.docker(args).then((r) => must(r, `${engine.name}: docker ${args.join(' ')}`));
const BRIDGE_RUN = ['run', '--rm', 'busybox', 'true'];
const NONE_RUN = ['run', '--rm', '--network', 'none', 'busybox', 'true'];

const steps: Record<'bridge' | 'none' | 'netCreateRm' | 'publishCurl', Step> = {
  bridge: async (e) => ({ seconds: await time(() => docker(e, BRIDGE_RUN)) }),
  none: async (e) => ({ seconds: await time(() => docker(e, NONE_RUN)) }),
  netCreateRm: async (e) => {
    const name = `bench-${randomBytes(3).toString('hex')}`;
    return { seconds: await time(async () => {
      await docker(e, ['network', 'create', name]);
      await docker(e, ['network', 'rm', name]);
    }) };
  },
  publishCurl: async (e) => {
    let id = '';
    const seconds = await time(async () => {
      id = (await docker(e, ['run', '-d', '-p', '127.0.0.1::8080', ...HTTPD])).stdout.trim();
      const port = (await docker(e, ['port', id, '8080'])).stdout.trim().split('\n')[0]!.split(':')[1];
      const deadline = Date.now() + 10_000;
      while (!(await curlOk(`http://127.0.0.1:${port}/`))) {
        if (Date.now() > deadline) throw new Error(`${e.name}: published port ${port} never answered`);
      }
    });
    return { seconds, after: () => docker(e, ['rm', '-f', id]) };
  },
};

/**
 * Every step N times, the engines taking turns (the first one alternating); bridge and none
 * alternate too. An engine that fails leaves the rotation with its error; the others go on.
 */
async function measureInTurns(engines: Engine[], results: Map<Engine, Result>, n: number, warmup: number): Promise<void> {
  const samples = new Map(engines.map((e) => [e, { bridge: [] as number[], none: [] as number[], netCreateRm: [] as number[], publishCurl: [] as number[] }]));
  const live = () => engines.filter((e) => !results.get(e)!.error);
  const turn = async (i: number, step: Step, record: ((e: Engine, s: number) => void) | null) => {
    const order = i % 2 ? [...live()].reverse() : live();
    for (const e of order) {
      try {
        const r = await step(e);
        record?.(e, r.seconds);
        await r.after?.();
      } catch (err) {
        results.get(e)!.error = (err as Error).message;
        process.stderr.write(`bench: ${e.name} failed: ${(err as Error).message}\n${e.log()}\n`);
      }
    }
  };
  for (let i = 0; i < warmup; i++) {
    await turn(i, steps.bridge, null);
    await turn(i, steps.none, null);
  }
  const keys = ['bridge', 'none', 'netCreateRm', 'publishCurl'] as const;
  for (const key of keys.filter((k) => k !== 'none')) {
    for (let i = 0; i < n; i++) {
      await turn(i, steps[key], (e, sec) => samples.get(e)![key].push(sec));
      if (key === 'bridge') await turn(i + 1, steps.none, (e, sec) => samples.get(e)!.none.push(sec));
    }
  }
  for (const e of engines) {
    const res = results.get(e)!;
    if (res.error) continue;
    const got = samples.get(e)!;
    for (const k of keys) res[k] = stats(got[k]);
    res.overheadMs = (res.bridge!.median - res.none!.median) * 1000;
  }
}

/** What berthd does per bridged container, timed alone: createSandbox then destroySandbox on a bridge of its own. */
async function stackCost(n: number): Promise<Stats> {
  const br = `bns${randomBytes(4).toString('hex')}`;
  const bip = testBip();
  const base = bip.replace(/1\/24$/, '');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-netns-'));
  const unhook = onExitSync(() => void spawnSync('ip', ['link', 'del', br]));
  try {
    ensureBridge(br, bip, 1500);
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const file = path.join(dir, `ns${i}`);
      const veth = `vbn${randomBytes(4).toString('hex')}`;
      out.push(await time(async () => {
        createSandbox(file, [{ ifname: 'eth0', veth, bridge: br, mac: '02:42:0a:00:00:02', ip: `${base}2`, prefixLen: 24, gateway: `${base}1`, mtu: 1500 }]);
        destroySandbox(file);
      }));
    }
    return stats(out);
  } finally {
    await deleteLink(br);
    unhook();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** dockerd 20.10 names only docker0 itself; another default bridge must exist first. */
async function dockerdBridge(): Promise<{ flags: string[]; remove: () => void }> {
  const name = `bnd${randomBytes(4).toString('hex')}`;
  const bip = testBip();
  await mustRun('ip', ['link', 'add', name, 'type', 'bridge']);
  const before = iptablesSnapshot();
  const remove = () => {
    spawnSync('ip', ['link', 'del', name]);
    takeBackIptables(before, name);
  };
  const unhook = onExitSync(remove);
  await mustRun('ip', ['addr', 'add', bip, 'dev', name]);
  await mustRun('ip', ['link', 'set', name, 'up']);
  // dockerd as installed: iptables on (NAT, isolation, the DOCKER chains), as berthd runs with its own.
  return { flags: ['--bridge', name], remove: () => { unhook(); remove(); } };
}

const TABLES = ['filter', 'nat'];

/** `iptables -S` of each table: what was there before dockerd. */
function iptablesSnapshot(): Map<string, Set<string>> {
  return new Map(TABLES.map((t) => [t, new Set(iptablesRules(t))]));
}

function iptablesRules(table: string): string[] {
  return spawnSync('iptables', ['-w', '-t', table, '-S'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
}

/**
 * dockerd never removes its DOCKER chains and rules: delete, after it stopped, the rules and chains
 * that were not there before and are dockerd's (they name a DOCKER chain or the bench's bridge).
 */
function takeBackIptables(before: Map<string, Set<string>>, bridge: string): void {
  for (const table of TABLES) {
    const had = before.get(table)!;
    const added = iptablesRules(table).filter((l) => !had.has(l) && (/DOCKER/.test(l) || l.includes(bridge)));
    for (const rule of added.filter((l) => l.startsWith('-A ')).reverse()) spawnSync('iptables', ['-w', '-t', table, '-D', ...rule.slice(3).split(' ')]);
    const chains = added.filter((l) => l.startsWith('-N ')).map((l) => l.slice(3));
    for (const c of chains) spawnSync('iptables', ['-w', '-t', table, '-F', c]);
    for (const c of chains) spawnSync('iptables', ['-w', '-t', table, '-X', c]);
  }
}

const ms = (s: number | undefined) => (s === undefined ? '-' : `${(s * 1000).toFixed(1)}`);
const triple = (x: Stats | undefined) => (x ? `${ms(x.min)} / ${ms(x.median)} / ${ms(x.max)}` : '-');

async function main(): Promise<void> {
  const o = benchArgs('usage: bench/network.ts [--with-dockerd] [-n 30] [--warmup 3]', ['with-dockerd'], {
    n: { default: 30, min: 1, max: 500, short: 'n' },
    warmup: { default: 3, min: 0, max: 20 },
  });
  const dockerd = await ensureDockerd(o.withDockerd);
  if (!dockerd) process.stderr.write('bench: dockerd not installed; measuring berthd only (--with-dockerd installs docker.io)\n');
  await testImages();
  const engines: Engine[] = [];
  const results = new Map<Engine, Result>();
  const failed: Result[] = [];
  let bridge: { flags: string[]; remove: () => void } | undefined;
  try {
    for (const which of dockerd ? ['berthd', 'dockerd'] : ['berthd']) {
      try {
        let engine: Engine;
        if (which === 'dockerd') {
          bridge = await dockerdBridge();
          engine = await startDockerd(dockerd!, {}, bridge.flags);
        } else engine = await startBerth();
        engines.push(engine);
        results.set(engine, { engine: which, version: await engine.version() });
        await loadBusybox(engine);
      } catch (e) {
        failed.push({ engine: which, error: (e as Error).message });
        process.stderr.write(`bench: ${which} failed to start: ${(e as Error).message}\n`);
      }
    }
    process.stderr.write(`bench: measuring ${engines.map((e) => e.name).join(' and ')}, taking turns...\n`);
    await measureInTurns(engines, results, o.n, o.warmup);
  } finally {
    for (const e of engines) await e.stop();
    bridge?.remove();
  }
  const berthRes = [...results.values()].find((r) => r.engine === 'berthd');
  if (berthRes && !berthRes.error) berthRes.stack = await stackCost(o.n);
  const all = [...results.values(), ...failed].sort((a, b) => (a.engine === 'berthd' ? -1 : b.engine === 'berthd' ? 1 : 0));
  const head = ['engine', 'version', 'run --rm (bridge) ms', 'run --rm (none) ms', 'bridge cost ms', 'stack setup+teardown ms', 'network create+rm ms', 'run -d -p + curl ms'];
  const rows = all.map((r) => r.error ? [r.engine, r.version ?? '-', 'error', '-', '-', '-', '-', '-']
    : [r.engine, r.version ?? '-', triple(r.bridge), triple(r.none), (r.overheadMs ?? 0).toFixed(1), triple(r.stack), triple(r.netCreateRm), triple(r.publishCurl)]);
  process.stdout.write(`docker CLI wall times, N=${o.n} each after ${o.warmup} warm-ups, engines taking turns; min / median / max\n${formatTable(head, rows, (i) => i < 2)}\n`);
  const b = all.find((r) => r.engine === 'berthd');
  const d = all.find((r) => r.engine === 'dockerd');
  if (b?.bridge && d?.bridge) process.stdout.write(`berthd/dockerd median on the bridge: ${(b.bridge.median / d.bridge.median).toFixed(2)}x\n`);
  process.stdout.write(JSON.stringify({ bench: 'network', n: o.n, results: all }) + '\n');
  if (all.some((r) => r.error)) process.exitCode = 1;
}

main().catch((e: Error) => {
  process.stderr.write(`bench: ${e.message}\n`);
  process.exit(1);
});
