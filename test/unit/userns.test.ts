import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseRemap, toHost } from '../../src/container/userns.js';
import { InvalidParameter } from '../../src/errors.js';

test('userns-remap: ranges from subuid/subgid by name or id, laid end to end; dockerd\'s errors', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-remap-'));
  try {
    const files = { passwd: path.join(dir, 'passwd'), group: path.join(dir, 'group'), subuid: path.join(dir, 'subuid'), subgid: path.join(dir, 'subgid') };
    fs.writeFileSync(files.passwd, 'root:x:0:0::/root:/bin/sh\nremap:x:1500:1600::/:/bin/false\n');
    fs.writeFileSync(files.group, 'root:x:0:\nremap:x:1600:\nother:x:1700:\n');
    fs.writeFileSync(files.subuid, 'remap:100000:65536\n1500:300000:1000\n');
    fs.writeFileSync(files.subgid, 'remap:200000:65536\nother:400000:10\n');
    const r = parseRemap('remap', files);
    assert.deepEqual(r.uid, [{ containerID: 0, hostID: 100000, size: 65536 }, { containerID: 65536, hostID: 300000, size: 1000 }]);
    assert.deepEqual(r.gid, [{ containerID: 0, hostID: 200000, size: 65536 }]);
    assert.equal(r.rootUid, 100000);
    assert.equal(r.rootGid, 200000);
    assert.equal(parseRemap('1500:other', files).rootGid, 400000);
    const bad = (spec: string, re: RegExp) => assert.throws(() => parseRemap(spec, files), (e: Error) => e instanceof InvalidParameter && re.test(e.message));
    bad('nosuch', /no such user/);
    bad('root', /No subuid ranges found for user "root"/);
    bad('default', /not supported yet/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('userns-remap: container ids to host ids across the ranges; an id outside them is refused with dockerd\'s message', () => {
  const shift = toHost({
    spec: 'x', rootUid: 100000, rootGid: 200000,
    uid: [{ containerID: 0, hostID: 100000, size: 1000 }, { containerID: 1000, hostID: 500000, size: 10 }],
    gid: [{ containerID: 0, hostID: 200000, size: 65536 }],
  });
  assert.deepEqual(shift(0, 0), { uid: 100000, gid: 200000 });
  assert.deepEqual(shift(999, 100), { uid: 100999, gid: 200100 });
  assert.deepEqual(shift(1005, 65535), { uid: 500005, gid: 265535 });
  assert.throws(() => shift(1010, 0), (e: Error) => e instanceof InvalidParameter && /Container ID 1010 cannot be mapped to a host ID/.test(e.message));
  assert.throws(() => shift(0, 65536), /Container ID 65536 cannot be mapped/);
});
