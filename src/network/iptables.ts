/**
 * NAT and isolation in berth's own iptables chains (nf_tables backend through iptables-nft), named
 * after the daemon's default bridge so two daemons never share one:
 *   nat    <P>-DNAT  published ports (jumped to from PREROUTING and, but for loopback, OUTPUT)
 *          <P>-POST  masquerade of each non-internal bridge subnet (from POSTROUTING)
 *   filter <P>-FWD   isolation between networks, icc=false, internal networks (from FORWARD)
 * sync() rebuilds every chain from the daemon's state in one iptables-restore --noflush, so it is
 * idempotent and a restarted daemon simply writes them again; the jumps from the built-in chains
 * are checked before they are added. remove() takes the jumps and the chains away.
 */
import { spawn } from 'node:child_process';
import { SystemError } from '../errors.js';

export interface BridgeNet {
  bridge: string;
  subnet: string;
  internal: boolean;
  icc: boolean;
  /** Masquerade what leaves the bridge (com.docker.network.bridge.enable_ip_masquerade). */
  masquerade: boolean;
}

export interface Forward {
  proto: string;
  hostIp: string;
  hostPort: number;
  containerIp: string;
  containerPort: number;
  bridge: string;
}

function exec(cmd: string, args: string[], input?: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', (e) => reject(new SystemError(`${cmd}: ${e.message}`)));
    child.on('close', (code) => resolve({ code: code ?? 1, stderr }));
    if (input !== undefined) {
      child.stdin!.on('error', () => {});
      child.stdin!.end(input);
    }
  });
}

export class Iptables {
  readonly dnat: string;
  readonly post: string;
  readonly fwd: string;
  /** The jumps are checked once per daemon run; after that only the chains change. */
  private hooked = false;

  /** userland-proxy: false: loopback is DNATed too (with route_localnet on the bridges) and masqueraded. */
  constructor(prefix: string, private readonly loopback = false) {
    this.dnat = `${prefix}-DNAT`;
    this.post = `${prefix}-POST`;
    this.fwd = `${prefix}-FWD`;
  }

  private hooks(): [string, string, string[]][] {
    return [
      ['nat', 'PREROUTING', ['-m', 'addrtype', '--dst-type', 'LOCAL', '-j', this.dnat]],
      ['nat', 'OUTPUT', [...(this.loopback ? [] : ['!', '-d', '127.0.0.0/8']), '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', this.dnat]],
      ['nat', 'POSTROUTING', ['-j', this.post]],
      ['filter', 'FORWARD', ['-j', this.fwd]],
    ];
  }

  /** The rules for the state, as iptables-restore input (exported for tests). */
  render(nets: BridgeNet[], forwards: Forward[]): string {
    const nat = ['*nat', `:${this.dnat} - [0:0]`, `:${this.post} - [0:0]`];
    for (const n of nets) {
      if (!n.internal && n.masquerade) nat.push(`-A ${this.post} -s ${n.subnet} ! -o ${n.bridge} -j MASQUERADE`);
      if (this.loopback) nat.push(`-A ${this.post} -s 127.0.0.0/8 -o ${n.bridge} -j MASQUERADE`);
    }
    for (const f of forwards) {
      const dst = f.hostIp && f.hostIp !== '0.0.0.0' ? ` -d ${f.hostIp}/32` : '';
      nat.push(`-A ${this.dnat}${dst} ! -i ${f.bridge} -p ${f.proto} -m ${f.proto} --dport ${f.hostPort} -j DNAT --to-destination ${f.containerIp}:${f.containerPort}`);
    }
    nat.push('COMMIT');
    const filter = ['*filter', `:${this.fwd} - [0:0]`];
    for (const n of nets) {
      for (const m of nets) if (m.bridge !== n.bridge) filter.push(`-A ${this.fwd} -i ${n.bridge} -o ${m.bridge} -j DROP`);
      if (n.internal) {
        filter.push(`-A ${this.fwd} -i ${n.bridge} ! -o ${n.bridge} -j DROP`, `-A ${this.fwd} ! -i ${n.bridge} -o ${n.bridge} -j DROP`);
      }
      if (!n.icc) filter.push(`-A ${this.fwd} -i ${n.bridge} -o ${n.bridge} -j DROP`);
    }
    const accepts = new Set(forwards.map((f) => `-A ${this.fwd} -d ${f.containerIp}/32 ! -i ${f.bridge} -o ${f.bridge} -p ${f.proto} -m ${f.proto} --dport ${f.containerPort} -j ACCEPT`));
    filter.push(...accepts);
    for (const n of nets) {
      filter.push(`-A ${this.fwd} -o ${n.bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`);
      if (!n.internal) filter.push(`-A ${this.fwd} -i ${n.bridge} -j ACCEPT`);
    }
    filter.push('COMMIT');
    return [...nat, ...filter, ''].join('\n');
  }

  async sync(nets: BridgeNet[], forwards: Forward[]): Promise<void> {
    const r = await exec('iptables-restore', ['-w', '--noflush'], this.render(nets, forwards));
    if (r.code !== 0) throw new SystemError(`iptables-restore failed: ${r.stderr.trim()}`);
    if (this.hooked) return;
    for (const [table, chain, rule] of this.hooks()) {
      const check = await exec('iptables', ['-w', '-t', table, '-C', chain, ...rule]);
      if (check.code === 0) continue;
      const add = await exec('iptables', ['-w', '-t', table, '-I', chain, '1', ...rule]);
      if (add.code !== 0) throw new SystemError(`iptables -t ${table} -I ${chain} failed: ${add.stderr.trim()}`);
    }
    this.hooked = true;
  }

  /** Every jump and chain of this daemon's, gone; what is already gone is fine. */
  async remove(): Promise<void> {
    this.hooked = false;
    for (const [table, chain, rule] of this.hooks()) {
      while ((await exec('iptables', ['-w', '-t', table, '-D', chain, ...rule])).code === 0) { /* a jump added twice goes twice */ }
    }
    for (const [table, chain] of [['nat', this.dnat], ['nat', this.post], ['filter', this.fwd]] as const) {
      await exec('iptables', ['-w', '-t', table, '-F', chain]);
      await exec('iptables', ['-w', '-t', table, '-X', chain]);
    }
  }
}
