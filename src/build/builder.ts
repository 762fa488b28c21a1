/**
 * The builder: a parsed Dockerfile + a context → an image, the way docker's classic builder does it.
 *
 * Each step starts from the current image of its stage and yields the next one (an intermediate
 * image whose parent is the previous, as dockerd keeps them):
 *   metadata (ENV, CMD, LABEL, …)  → a config-only image (history entry with empty_layer);
 *   RUN                            → a real container (ContainerService: create → start → wait),
 *                                    whose rw layer (snapshotChanges) becomes the layer, then removed;
 *   COPY / ADD / WORKDIR           → the files written into a fresh snapshot of the image, whose diff
 *                                    becomes the layer.
 * Every layer goes through createChildImage (image/commit.ts): the one ingest path. Before running a
 * step the cache (cache.ts) is asked for the image the same step made on the same parent.
 * A lease holds what the build made until it ends, so a concurrent GC cannot take it.
 * Only the stages the target needs run. Nothing is tagged unless the whole build succeeded.
 */
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { safeJoin } from '../archive/index.js';
import type { ContentStore, Lease } from '../content/index.js';
import type { ContainerService } from '../container/service.js';
import { BerthError, InvalidParameter, NotFound, errorMessage } from '../errors.js';
import type { EventBus } from '../events/index.js';
import { type ContainerConfig, type HealthConfig, type Image, type ImageStore, createChildImage, familiarString, parsePlatform, parseReference } from '../image/index.js';
import { log } from '../log.js';
import type { JSONMessage, RegistryClient } from '../registry/client/index.js';
import { resolveUserSync } from '../runtime/user.js';
import { type Snapshotter, snapshotChanges, withMounts } from '../storage/index.js';
import { BuildCache } from './cache.js';
import { BuildContext, hasWildcard, type Source } from './context.js';
import { type Owner, copyInto, downloadInto, writeFileInto } from './copy.js';
import { type Instruction, type Stage, DockerfileError, parse, splitStages } from './parser.js';
import { type Env, expandWord } from './shell.js';

export interface BuilderDeps {
  images: ImageStore;
  content: ContentStore;
  storage: Snapshotter;
  containers: ContainerService;
  registry: RegistryClient;
  events: EventBus;
  cache: BuildCache;
}

export interface BuildOptions {
  dockerfile: string;
  /** Shown in errors ("Dockerfile"). */
  dockerfileName: string;
  context: BuildContext;
  tags: string[];
  buildArgs: Record<string, string | null>;
  target?: string;
  labels: Record<string, string>;
  noCache: boolean;
  pull: boolean;
  rm: boolean;
  forceRm: boolean;
  memory: number;
  networkMode: string;
  platform?: string;
  out(m: BuildMessage): void;
  signal: AbortSignal;
}

/** Docker's JSON stream messages; `stream` carries the build's text output. */
export type BuildMessage = JSONMessage & { stream?: string; errorDetail?: { message: string; code?: number } };

/** A build step failed: the message names it; code is the exit code docker's CLI passes on. */
export class BuildError extends BerthError {
  constructor(message: string, readonly code = 1, readonly located = false) {
    super(message);
  }
}

/** Build args every Dockerfile may use without declaring them (not in the image). */
const PREDEFINED_ARGS = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy'];
const DEFAULT_SHELL = ['/bin/sh', '-c'];
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const shortId = (id: string) => id.replace(/^sha256:/, '').slice(0, 12);

/** Go's %q of a []string, as docker writes CMD/ENTRYPOINT/VOLUME in history. */
function goList(a: string[]): string {
  return '[' + a.map((s) => JSON.stringify(s)).join(' ') + ']';
}

/** Go duration ("1m30s", "500ms") → nanoseconds. */
function parseDuration(flag: string, s: string): number {
  const units: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  for (let m; (m = re.exec(s));) {
    total += Number(m[1]) * units[m[2]!]!;
    matched += m[0].length;
  }
  if (matched !== s.length || s === '') throw new InvalidParameter(`time: invalid duration "${s}" for --${flag}`);
  return Math.round(total);
}

interface StageState {
  stage: Stage;
  image: Image | null;
  config: ContainerConfig;
  /** ARGs declared in this stage, with their values (undefined: declared without one). */
  args: Map<string, string | undefined>;
  cmdSet: boolean;
  author?: string;
}

export class Builder {
  private step = 0;
  private total = 0;
  private readonly lease: Lease;
  private readonly done = new Map<number, StageState>();
  private readonly usedArgs = new Set<string>();
  private readonly globalArgs = new Map<string, string | undefined>();
  private escape = '\\';

  constructor(private readonly d: BuilderDeps, private readonly o: BuildOptions) {
    this.lease = d.content.leases.create();
  }

  private say(text: string): void {
    this.o.out({ stream: text });
  }

  async run(): Promise<Image> {
    try {
      return await this.build();
    } finally {
      this.lease.release();
    }
  }

  private async build(): Promise<Image> {
    const df = parse(this.o.dockerfile);
    this.escape = df.escape;
    const { globalArgs, stages } = splitStages(df);
    for (const a of globalArgs) {
      for (const w of a.args) {
        const [name, def] = this.argPair(w, new Map([...this.globalArgs].filter((e): e is [string, string] => e[1] !== undefined)));
        const given = this.o.buildArgs[name];
        this.globalArgs.set(name, given !== undefined && given !== null ? given : def);
        if (given !== undefined) this.usedArgs.add(name);
      }
    }
    let targetIndex = stages.length - 1;
    if (this.o.target) {
      const t = stages.findIndex((s) => s.name === this.o.target!.toLowerCase());
      if (t < 0) throw new BuildError(`failed to reach build target ${this.o.target} in Dockerfile`);
      targetIndex = t;
    }
    const target = stages[targetIndex]!;
    if (Object.keys(this.o.labels).length) {
      const text = 'LABEL ' + Object.entries(this.o.labels).map(([k, v]) => `${JSON.stringify(k)}=${JSON.stringify(v)}`).join(' ');
      const extra = parse(`FROM scratch\n${text}\n`).instructions[1]!;
      target.instructions.push({ ...extra, line: target.instructions.at(-1)?.endLine ?? target.from.line });
    }
    const needed = this.neededStages(stages, targetIndex);
    this.total = globalArgs.length + stages.filter((s) => needed.has(s.index)).reduce((n, s) => n + 1 + s.instructions.length, 0);

    // Global ARGs are counted and shown as steps, as dockerd does; they make no image.
    for (const a of globalArgs) {
      this.step++;
      this.say(`Step ${this.step}/${this.total} : ${a.original.trim()}\n`);
    }
    for (const stage of stages) {
      if (!needed.has(stage.index)) continue;
      this.o.signal.throwIfAborted();
      this.done.set(stage.index, await this.runStage(stage, stages));
    }
    const final = this.done.get(targetIndex)!;
    if (!final.image) throw new BuildError('No image was generated. Is your Dockerfile empty?');

    const unused = Object.keys(this.o.buildArgs).filter((k) => !this.usedArgs.has(k) && !PREDEFINED_ARGS.includes(k));
    if (unused.length) this.say(`[Warning] One or more build-args [${unused.join(' ')}] were not consumed\n`);
    const id = final.image.id;
    this.o.out({ aux: { ID: id } });
    this.say(`Successfully built ${shortId(id)}\n`);
    for (const t of this.o.tags) {
      this.d.images.tag(id, t);
      this.say(`Successfully tagged ${familiarString(parseReference(t))}\n`);
    }
    return final.image;
  }

  /** The stages `target` depends on (FROM another stage, COPY --from), itself included. */
  private neededStages(stages: Stage[], target: number): Set<number> {
    const need = new Set<number>();
    const byRef = (ref: string, before: number): number | null => {
      const lower = ref.toLowerCase();
      const named = stages.findIndex((s, i) => i < before && s.name === lower);
      if (named >= 0) return named;
      if (/^\d+$/.test(ref) && Number(ref) < before) return Number(ref);
      return null;
    };
    const visit = (i: number) => {
      if (need.has(i)) return;
      need.add(i);
      const s = stages[i]!;
      const base = byRef(this.expandFrom(s.base), i);
      if (base !== null) visit(base);
      for (const ins of s.instructions) {
        const from = ins.flags.find((f) => f.name === 'from')?.value;
        if (ins.cmd === 'copy' && from) {
          const dep = byRef(from, i);
          if (dep !== null) visit(dep);
        }
      }
    };
    visit(target);
    return need;
  }

  private expandFrom(word: string): string {
    const env = new Map<string, string>();
    for (const [k, v] of this.globalArgs) if (v !== undefined) env.set(k, v);
    return expandWord(word, env, this.escape);
  }

  private header(ins: Instruction): void {
    this.step++;
    this.say(`Step ${this.step}/${this.total} : ${ins.original.trim()}\n`);
  }

  private async runStage(stage: Stage, stages: Stage[]): Promise<StageState> {
    this.header(stage.from);
    const baseName = this.expandFrom(stage.base);
    let image: Image | null = null;
    if (baseName.toLowerCase() !== 'scratch') {
      const prev = stages.findIndex((s, i) => i < stage.index && s.name === baseName.toLowerCase());
      if (prev >= 0) image = this.done.get(prev)?.image ?? null;
      else image = await this.imageFor(baseName, this.o.pull, stage.platform ? this.expandFrom(stage.platform) : undefined).catch((err: unknown) => this.fail(stage.from, err));
    }
    const st: StageState = { stage, image, config: structuredClone(image?.config.config ?? {}), args: new Map(), cmdSet: false };
    this.say(image ? ` ---> ${shortId(image.id)}\n` : ' ---> \n');
    // Like dockerd, every stage gets the default PATH unless its base sets one.
    if (!(st.config.Env ?? []).some((e) => e.startsWith('PATH='))) st.config.Env = [...(st.config.Env ?? []), `PATH=${DEFAULT_PATH}`];

    const triggers = st.config.OnBuild ?? [];
    if (triggers.length) {
      st.config.OnBuild = null;
      this.say(`# Executing ${triggers.length} build ${triggers.length === 1 ? 'trigger' : 'triggers'}\n`);
      for (const t of triggers) {
        const ins = parse(`FROM scratch\n${t}\n`).instructions[1]!;
        await this.dispatch(st, { ...ins, line: stage.from.line });
      }
    }
    for (const ins of stage.instructions) {
      this.o.signal.throwIfAborted();
      this.header(ins);
      await this.dispatch(st, ins);
    }
    return st;
  }

  /** A local image, pulled when missing (or always with --pull). */
  private async imageFor(ref: string, pull: boolean, platform?: string): Promise<Image> {
    const want = platform ?? this.o.platform;
    if (!pull) {
      let local: Image | null = null;
      try {
        local = this.d.images.resolve(ref);
      } catch (err) {
        if (!(err instanceof NotFound)) throw err;
      }
      // A local image of another platform is not the one asked for: pull the right one.
      if (local && (!want || matchesPlatform(local, want))) return local;
    }
    try {
      return await this.d.registry.pull(ref, { platform: want, progress: (m) => this.o.out(m), signal: this.o.signal });
    } catch (err) {
      throw new BuildError(`pull access denied or repository does not exist for ${ref}${want ? ` (platform ${want})` : ''}: ${errorMessage(err)}`);
    }
  }

  // ---- expansion and args ---------------------------------------------------------------------

  /** Variables an instruction's words see: the stage's ARGs, then ENV (which wins). */
  private env(st: StageState): Env {
    const m = new Map<string, string>();
    for (const [k, v] of st.args) if (v !== undefined) m.set(k, v);
    for (const e of st.config.Env ?? []) {
      const i = e.indexOf('=');
      if (i > 0) m.set(e.slice(0, i), e.slice(i + 1));
    }
    return m;
  }

  private word(st: StageState, w: string): string {
    return expandWord(w, this.env(st), this.escape);
  }

  /** `name` or `name=value` of an ARG, the value expanded. */
  private argPair(w: string, env: Env): [string, string | undefined] {
    const eq = w.indexOf('=');
    if (eq < 0) return [w, undefined];
    return [w.slice(0, eq), expandWord(w.slice(eq + 1), env, this.escape)];
  }

  /** Build args a RUN gets in its environment (declared and given, or predefined and given), not shadowed by ENV. */
  private runArgs(st: StageState): string[] {
    const env = new Set((st.config.Env ?? []).map((e) => e.split('=')[0]));
    const out: string[] = [];
    for (const [k, v] of st.args) if (v !== undefined && !env.has(k)) out.push(`${k}=${v}`);
    for (const k of PREDEFINED_ARGS) {
      const v = this.o.buildArgs[k];
      if (v !== undefined && v !== null && !st.args.has(k) && !env.has(k)) {
        out.push(`${k}=${v}`);
        this.usedArgs.add(k);
      }
    }
    return out.sort();
  }

  private shell(st: StageState): string[] {
    return st.config.Shell?.length ? st.config.Shell : DEFAULT_SHELL;
  }

  // ---- steps ------------------------------------------------------------------------------------

  /** The error of a step, named by the Dockerfile's line and the instruction as written. */
  private fail(ins: Instruction, err: unknown): never {
    if (err instanceof DockerfileError || (err instanceof BuildError && err.located)) throw err;
    const code = err instanceof BuildError ? err.code : 1;
    const where = `${this.o.dockerfileName}:${ins.line} ${ins.original.trim().split('\n')[0]}`;
    throw new BuildError(`${where}: ${errorMessage(err)}`, code, true);
  }

  private async dispatch(st: StageState, ins: Instruction): Promise<void> {
    try {
      await this.dispatchInner(st, ins);
    } catch (err) {
      this.fail(ins, err);
    }
  }

  private async dispatchInner(st: StageState, ins: Instruction): Promise<void> {
    const env = () => this.env(st);
    switch (ins.cmd) {
      case 'env': {
        const pairs = this.keyValues(st, ins);
        await this.meta(st, `ENV ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`, (c) => {
          const list = [...(c.Env ?? [])];
          for (const [k, v] of pairs) {
            const i = list.findIndex((e) => e.split('=')[0] === k);
            if (i >= 0) list[i] = `${k}=${v}`;
            else list.push(`${k}=${v}`);
          }
          c.Env = list;
        });
        return;
      }
      case 'label': {
        const pairs = this.keyValues(st, ins);
        await this.meta(st, ` LABEL ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`, (c) => {
          c.Labels = { ...(c.Labels ?? {}) };
          for (const [k, v] of pairs) c.Labels[k] = v;
        });
        return;
      }
      case 'arg': {
        const shown: string[] = [];
        for (const w of ins.args) {
          const [name, def] = this.argPair(w, env());
          const given = this.o.buildArgs[name];
          let value = given !== undefined && given !== null ? given : def;
          if (value === undefined && this.globalArgs.has(name)) value = this.globalArgs.get(name);
          if (given !== undefined) this.usedArgs.add(name);
          st.args.set(name, value);
          shown.push(def !== undefined ? `${name}=${def}` : name);
        }
        await this.meta(st, `ARG ${shown.join(' ')}`, () => {});
        return;
      }
      case 'cmd': {
        const cmd = ins.json ?? [...this.shell(st), ins.rest];
        st.cmdSet = true;
        await this.meta(st, ` CMD ${goList(cmd)}`, (c) => { c.Cmd = cmd; });
        return;
      }
      case 'entrypoint': {
        const ep = ins.json ?? [...this.shell(st), ins.rest];
        await this.meta(st, ` ENTRYPOINT ${goList(ep)}`, (c) => {
          c.Entrypoint = ep;
          if (!st.cmdSet) c.Cmd = null;
        });
        return;
      }
      case 'shell': {
        if (!ins.json) throw new InvalidParameter('SHELL requires the arguments to be in JSON form');
        if (ins.json.length === 0) throw new InvalidParameter('SHELL requires at least one argument');
        const sh = ins.json;
        await this.meta(st, ` SHELL ${goList(sh)}`, (c) => { c.Shell = sh; });
        return;
      }
      case 'user': {
        const u = this.word(st, ins.rest);
        await this.meta(st, ` USER ${u}`, (c) => { c.User = u; });
        return;
      }
      case 'stopsignal': {
        const s = this.word(st, ins.rest);
        if (!/^(SIG)?[A-Z0-9+-]+$/i.test(s)) throw new InvalidParameter(`Invalid signal: ${s}`);
        await this.meta(st, ` STOPSIGNAL ${s}`, (c) => { c.StopSignal = s; });
        return;
      }
      case 'maintainer': {
        st.author = this.word(st, ins.rest);
        await this.meta(st, ` MAINTAINER ${st.author}`, () => {});
        return;
      }
      case 'expose': {
        const ports: string[] = [];
        for (const w of ins.args) {
          for (const p of this.word(st, w).split(/\s+/).filter(Boolean)) {
            const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(p);
            if (!m) throw new InvalidParameter(`invalid containerPort: ${p}`);
            const lo = Number(m[1]);
            const hi = m[2] ? Number(m[2]) : lo;
            if (hi < lo || hi > 65535) throw new InvalidParameter(`invalid range: ${p}`);
            for (let n = lo; n <= hi; n++) ports.push(`${n}/${(m[3] ?? 'tcp').toLowerCase()}`);
          }
        }
        const sorted = [...new Set(ports)].sort();
        await this.meta(st, ` EXPOSE ${sorted.join(' ')}`, (c) => {
          c.ExposedPorts = { ...(c.ExposedPorts ?? {}) };
          for (const p of sorted) c.ExposedPorts[p] = {};
        });
        return;
      }
      case 'volume': {
        const vols = ins.args.map((w) => this.word(st, w));
        if (vols.some((v) => v.trim() === '')) throw new InvalidParameter('VOLUME specified can not be an empty string');
        await this.meta(st, ` VOLUME ${goList(vols)}`, (c) => {
          c.Volumes = { ...(c.Volumes ?? {}) };
          for (const v of vols) c.Volumes[v] = {};
        });
        return;
      }
      case 'healthcheck':
        return this.healthcheck(st, ins);
      case 'onbuild': {
        const trigger = ins.rest;
        await this.meta(st, ` ONBUILD ${trigger}`, (c) => { c.OnBuild = [...(c.OnBuild ?? []), trigger]; });
        return;
      }
      case 'workdir': {
        const dir = path.posix.resolve(st.config.WorkingDir || '/', this.word(st, ins.rest));
        const cfg = this.withConfig(st, (c) => { c.WorkingDir = dir; });
        await this.fsStep(st, `WORKDIR ${dir}`, cfg, [], async (root) => {
          await mkdirp(root, dir);
        });
        return;
      }
      case 'run':
        return this.runStep(st, ins);
      case 'copy':
      case 'add':
        return this.copyStep(st, ins);
      default:
        throw new InvalidParameter(`unknown instruction: ${ins.cmd.toUpperCase()}`);
    }
  }

  private keyValues(st: StageState, ins: Instruction): [string, string][] {
    const words = ins.args;
    const name = ins.cmd.toUpperCase();
    if (words.length === 0) throw new InvalidParameter(`${name} requires at least one argument`);
    if (!words[0]!.includes('=')) {
      // Legacy "ENV key value with spaces": one pair, the value is the rest of the line.
      const m = /^(\S+)\s+(.*)$/s.exec(ins.rest);
      if (!m) throw new InvalidParameter(`${name} must have two arguments`);
      return [[this.word(st, m[1]!), this.word(st, m[2]!)]];
    }
    return words.map((w) => {
      const eq = w.indexOf('=');
      if (eq < 0) throw new InvalidParameter(`Syntax error - can't find = in "${w}". Must be of the form: name=value`);
      if (eq === 0) throw new InvalidParameter(`${name} names can not be blank`);
      return [this.word(st, w.slice(0, eq)), this.word(st, w.slice(eq + 1))];
    });
  }

  private withConfig(st: StageState, change: (c: ContainerConfig) => void): ContainerConfig {
    const c = structuredClone(st.config);
    change(c);
    return c;
  }

  /** The cache's answer for a step on the current image, if any (and not --no-cache). */
  private cached(st: StageState, key: string): Image | null {
    if (this.o.noCache) return null;
    const id = this.d.cache.get(key);
    const img = id ? this.d.images.get(id) : null;
    if (img && img.parent === (st.image?.id ?? '')) return img;
    return null;
  }

  private stepKey(st: StageState, createdBy: string, config: ContainerConfig, extra: string[]): string {
    return BuildCache.key([st.image?.id ?? 'scratch', createdBy, JSON.stringify(config), st.author ?? '', ...extra]);
  }

  private advance(st: StageState, img: Image, key: string, fromCache: boolean): void {
    if (fromCache) this.say(' ---> Using cache\n');
    else this.d.cache.set(key, img.id);
    this.lease.blob(img.id);
    st.image = img;
    st.config = structuredClone(img.config.config ?? {});
    this.say(` ---> ${shortId(img.id)}\n`);
  }

  /** A config-only step: `#(nop) <comment>` in history. */
  private async meta(st: StageState, comment: string, change: (c: ContainerConfig) => void): Promise<void> {
    const config = this.withConfig(st, change);
    const createdBy = [...this.shell(st), `#(nop) ${comment}`].join(' ');
    const key = this.stepKey(st, createdBy, config, []);
    const hit = this.cached(st, key);
    if (hit) return this.advance(st, hit, key, true);
    const img = await createChildImage(this.d.images, this.d.content, this.d.storage, {
      base: st.image, layer: null, config, createdBy, author: st.author, lease: this.lease,
    });
    this.advance(st, img, key, false);
  }

  /** A step that writes files into a snapshot of the current image; its diff is the layer. */
  private async fsStep(st: StageState, comment: string, config: ContainerConfig, extra: string[], write: (root: string) => Promise<void>): Promise<void> {
    const createdBy = [...this.shell(st), `#(nop) ${comment}`].join(' ');
    const key = this.stepKey(st, createdBy, config, extra);
    const hit = this.cached(st, key);
    if (hit) return this.advance(st, hit, key, true);
    const { storage } = this.d;
    const top = st.image?.layers.at(-1)?.chainId ?? null;
    // "extract-" keys are what start-up recovery removes when a crash leaves one behind.
    const snap = `extract-build-${crypto.randomBytes(12).toString('hex')}`;
    const mounts = await storage.prepare(snap, top);
    try {
      await withMounts(mounts, write);
      const img = await createChildImage(this.d.images, this.d.content, storage, {
        base: st.image, layer: snapshotChanges(storage, snap), config, createdBy, author: st.author, lease: this.lease,
      });
      this.advance(st, img, key, false);
    } finally {
      await storage.remove(snap).catch((err) => log.warn('build: cannot remove a step snapshot', { snap, error: errorMessage(err) }));
    }
  }

  private async healthcheck(st: StageState, ins: Instruction): Promise<void> {
    const rest = ins.rest.trim();
    let hc: HealthConfig;
    if (/^none$/i.test(rest)) {
      if (ins.flags.length) throw new InvalidParameter('HEALTHCHECK NONE takes no arguments');
      hc = { Test: ['NONE'] };
    } else {
      const m = /^cmd\s+(.*)$/is.exec(rest);
      if (!m) throw new InvalidParameter('Unknown type "' + (rest.split(/\s+/)[0] ?? '') + '" in HEALTHCHECK (try CMD)');
      const body = m[1]!.trim();
      let json: string[] | null = null;
      if (body.startsWith('[')) {
        try {
          const v: unknown = JSON.parse(body);
          if (Array.isArray(v) && v.every((x) => typeof x === 'string')) json = v;
        } catch {}
      }
      hc = { Test: json ? ['CMD', ...json] : ['CMD-SHELL', body] };
      for (const f of ins.flags) {
        const v = f.value ?? '';
        if (f.name === 'retries') {
          if (!/^\d+$/.test(v)) throw new InvalidParameter(`strconv.ParseInt: parsing "${v}": invalid syntax`);
          hc.Retries = Number(v);
        } else {
          const ns = parseDuration(f.name, v);
          if (f.name === 'interval') hc.Interval = ns;
          else if (f.name === 'timeout') hc.Timeout = ns;
          else if (f.name === 'start-period') hc.StartPeriod = ns;
          else if (f.name === 'start-interval') hc.StartInterval = ns;
        }
      }
    }
    await this.meta(st, ` HEALTHCHECK &{${JSON.stringify(hc.Test)}}`, (c) => { c.Healthcheck = hc; });
  }

  private async runStep(st: StageState, ins: Instruction): Promise<void> {
    for (const f of ins.flags) {
      if (f.name === 'network' && f.value !== null && ['none', 'host', 'default'].includes(f.value)) continue;
      throw new InvalidParameter(`the --${f.name}${f.value !== null ? '=' + f.value : ''} option of RUN is not supported by berth's builder yet`);
    }
    if (!st.image) throw new InvalidParameter('RUN needs a base image with a shell; FROM scratch has none');
    let argv: string[];
    if (ins.json) argv = ins.json;
    else if (ins.heredocs.length) {
      const only = ins.heredocs.length === 1 && /^\d*<<-?["']?\w+["']?$/.test(ins.rest.trim());
      argv = only
        ? [...this.shell(st), ins.heredocs[0]!.content]
        : [...this.shell(st), ins.rest + '\n' + ins.heredocs.map((h) => h.content + h.name + '\n').join('')];
    } else argv = [...this.shell(st), ins.rest];
    const args = this.runArgs(st);
    for (const a of args) this.usedArgs.add(a.split('=')[0]!);
    const createdBy = (args.length ? [`|${args.length}`, ...args] : []).concat(argv).join(' ');
    const config = st.config;
    const key = this.stepKey(st, createdBy, config, []);
    const hit = this.cached(st, key);
    if (hit) return this.advance(st, hit, key, true);

    const network = ins.flags.find((f) => f.name === 'network')?.value;
    const svc = this.d.containers;
    const { Id } = await svc.create({
      Image: st.image.id,
      Cmd: argv,
      Entrypoint: [''],
      Env: [...(config.Env ?? []), ...args],
      User: config.User ?? '',
      WorkingDir: config.WorkingDir ?? '',
      Labels: {},
      // A build step is not a service: the image's HEALTHCHECK does not probe it.
      Healthcheck: { Test: ['NONE'] },
      HostConfig: {
        NetworkMode: network && network !== 'default' ? network : this.o.networkMode,
        ...(this.o.memory > 0 ? { Memory: this.o.memory } : {}),
      },
    }, null);
    this.say(` ---> Running in ${shortId(Id)}\n`);
    let ok = false;
    try {
      const c = svc.get(Id);
      const abort = new AbortController();
      // A client that goes away ends the build: its RUN is killed, not left to finish.
      const stop = () => {
        abort.abort();
        void svc.kill(Id, 'SIGKILL').catch(() => {});
      };
      this.o.signal.addEventListener('abort', stop, { once: true });
      const output = svc.streams.attachOutput(c, abort.signal);
      const pumping = (async () => {
        for await (const e of output) this.say(e.data.toString('utf8'));
      })();
      try {
        await svc.start(Id);
      } catch (err) {
        abort.abort();
        await pumping.catch(() => {});
        throw err;
      }
      const { StatusCode } = await svc.wait(Id, 'not-running');
      // The follower re-checks for the exit only when the log changes or every 250 ms: a touch
      // wakes it at once to read what is left and end (a RUN step is often shorter than that).
      await fsp.utimes(c.logPath, new Date(), new Date()).catch(() => {});
      await pumping.catch(() => {});
      this.o.signal.removeEventListener('abort', stop);
      this.o.signal.throwIfAborted();
      if (StatusCode !== 0) throw new BuildError(`The command '${argv.join(' ')}' returned a non-zero code: ${StatusCode}`, StatusCode);
      const img = await createChildImage(this.d.images, this.d.content, this.d.storage, {
        base: st.image, layer: svc.changes(svc.get(Id)), config, createdBy, author: st.author, lease: this.lease,
      });
      ok = true;
      if (this.o.rm || this.o.forceRm) {
        await svc.remove(Id, { force: true, volumes: true });
        this.say(` ---> Removed intermediate container ${shortId(Id)}\n`);
      }
      this.advance(st, img, key, false);
    } finally {
      // A failed step's container goes too (docker's --rm/--force-rm), so a failure leaves nothing.
      if (!ok && (this.o.rm || this.o.forceRm)) await svc.remove(Id, { force: true, volumes: true }).catch(() => {});
    }
  }

  private async copyStep(st: StageState, ins: Instruction): Promise<void> {
    const isAdd = ins.cmd === 'add';
    const name = ins.cmd.toUpperCase();
    let from: string | null = null;
    let chown: string | null = null;
    let chmod: number | null = null;
    for (const f of ins.flags) {
      if (f.name === 'from' && !isAdd) from = this.word(st, f.value ?? '');
      else if (f.name === 'chown') chown = this.word(st, f.value ?? '');
      else if (f.name === 'chmod') {
        const v = this.word(st, f.value ?? '');
        if (!/^[0-7]{3,4}$/.test(v)) throw new InvalidParameter(`invalid chmod parameter: ${v}`);
        chmod = parseInt(v, 8);
      } else if (f.name === 'link') continue;
      else throw new InvalidParameter(`the --${f.name} option of ${name} is not supported by berth's builder yet`);
    }
    const words = ins.args.map((w) => (ins.json ? this.word(st, w) : w));
    if (words.length < 2) throw new InvalidParameter(`${name} requires at least two arguments, but only one was provided. Destination could not be determined`);
    const rawDest = ins.json ? words.at(-1)! : this.word(st, words.at(-1)!);
    const srcWords = words.slice(0, -1);
    const dest = rawDest.startsWith('/') ? rawDest : path.posix.join(st.config.WorkingDir || '/', rawDest) + (rawDest.endsWith('/') ? '/' : '');

    // Heredoc sources (<<EOF) are files named after the heredoc.
    const heredocs = new Map(ins.heredocs.map((h) => [h.name, h]));
    const inline: { name: string; content: string }[] = [];
    const paths: string[] = [];
    for (const w of srcWords) {
      const m = /^<<-?["']?(\w+)["']?$/.exec(w);
      const h = m && !ins.json ? heredocs.get(m[1]!) : undefined;
      if (h) inline.push({ name: h.name, content: h.expand ? expandHeredoc(h.content, this.env(st), this.escape) : h.content });
      else paths.push(ins.json ? w : this.word(st, w));
    }
    const urls = paths.filter((p) => isAdd && /^https?:\/\//.test(p));
    const locals = paths.filter((p) => !urls.includes(p));

    // Where the sources come from: the context, another stage, or an image.
    let sourceImage: Image | null = null;
    if (from !== null) {
      const idx = this.stageRef(from, st.stage.index);
      if (idx !== null) sourceImage = this.done.get(idx)?.image ?? null;
      else sourceImage = await this.imageFor(from, false);
    }
    const withSources = async <T>(fn: (ctx: BuildContext) => Promise<T>): Promise<T> => {
      if (from === null) return fn(this.o.context);
      const top = sourceImage?.layers.at(-1)?.chainId ?? null;
      const view = `extract-build-view-${crypto.randomBytes(12).toString('hex')}`;
      const mounts = await this.d.storage.view(view, top);
      try {
        return await withMounts(mounts, (dir) => fn(new BuildContext(dir)));
      } finally {
        await this.d.storage.remove(view).catch(() => {});
      }
    };

    await withSources(async (ctx) => {
      const sources: Source[] = [];
      let wildcard = false;
      for (const p of locals) {
        if (hasWildcard(p)) wildcard = true;
        sources.push(...ctx.sources(p));
      }
      const destIsDir = wildcard || sources.length + inline.length + urls.length > 1;
      if (destIsDir && !dest.endsWith('/')) {
        throw new InvalidParameter(`When using ${name} with more than one source file, the destination must be a directory and end with a /`);
      }
      const digests: string[] = [];
      for (const s of sources) digests.push(`${s.stat.isDirectory() ? 'dir' : 'file'}:${await ctx.digest(s)}`);
      for (const i of inline) digests.push(`heredoc:${crypto.createHash('sha256').update(i.name + '\0' + i.content).digest('hex')}`);
      for (const u of urls) digests.push(`url:${u}`);
      const what = digests.length === 1 ? digests[0]! : `multi:${crypto.createHash('sha256').update(digests.join(',')).digest('hex')}`;
      const comment = `${name} ${what} in ${dest} `;
      // URLs are fetched again on every build (their content is not known before), as docker checks them.
      const extra = [chown ?? '', String(chmod ?? ''), from ?? '', urls.length ? crypto.randomUUID() : ''];
      await this.fsStep(st, comment, st.config, extra, async (root) => {
        const owner = chown ? resolveOwner(root, chown) : { uid: 0, gid: 0 };
        const o = { owner, chmod, destIsDir, unpack: isAdd && from === null };
        await copyInto(root, sources, dest, o);
        for (const i of inline) await writeFileInto(root, destIsDir || dest.endsWith('/') ? path.posix.join(dest, i.name) : dest, i.content, o);
        for (const u of urls) await downloadInto(root, u, dest, o);
      });
    });
  }

  private stageRef(ref: string, before: number): number | null {
    const lower = ref.toLowerCase();
    for (const [i, s] of this.done) if (i < before && s.stage.name === lower) return i;
    if (/^\d+$/.test(ref) && Number(ref) < before && this.done.has(Number(ref))) return Number(ref);
    return null;
  }
}

/** A heredoc body with variables expanded (quotes are text in a heredoc, so they are escaped first). */
function expandHeredoc(content: string, env: Env, escape: string): string {
  const protectedText = content.replace(/["']/g, (q) => escape + q);
  return expandWord(protectedText, env, escape);
}

/** Does the image match "os/arch[/variant]"? */
function matchesPlatform(img: Image, platform: string): boolean {
  const p = parsePlatform(platform);
  const c = img.config;
  return c.os === p.os && c.architecture === p.architecture && (!p.variant || c.variant === p.variant);
}

/** --chown=user[:group], names looked up in the image's /etc/passwd and /etc/group; gid defaults to uid. */
function resolveOwner(root: string, spec: string): Owner {
  const [u, g] = spec.split(':') as [string, string | undefined];
  const uid = /^\d+$/.test(u) ? Number(u) : resolveUserSync(root, u).uid;
  let gid = uid;
  if (g !== undefined && g !== '') gid = /^\d+$/.test(g) ? Number(g) : resolveUserSync(root, `0:${g}`).gid;
  return { uid, gid };
}

async function mkdirp(root: string, dir: string): Promise<void> {
  await fsp.mkdir(safeJoin(root, dir), { recursive: true, mode: 0o755 });
}
