/** Health checks' pure parts: Go durations, dockerd's validation and merge, the HEALTHCHECK change line. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatGoDuration, parseGoDuration } from '../../src/util/duration.js';
import { checkHealthcheck, mergeHealthcheck, probeCommand } from '../../src/container/health.js';
import { applyChanges } from '../../src/image/changes.js';
import { InvalidParameter } from '../../src/errors.js';
import type { Container } from '../../src/container/types.js';

test('Go durations parse as time.ParseDuration does, with its messages', { timeout: 10_000 }, () => {
  assert.equal(parseGoDuration('0'), 0);
  assert.equal(parseGoDuration('1s'), 1e9);
  assert.equal(parseGoDuration('1m30s'), 90e9);
  assert.equal(parseGoDuration('1.5s'), 1.5e9);
  assert.equal(parseGoDuration('250ms'), 250e6);
  assert.equal(parseGoDuration('2h'), 7200e9);
  assert.equal(parseGoDuration('10us'), 10e3);
  assert.equal(parseGoDuration('-5s'), -5e9);
  assert.throws(() => parseGoDuration('abc'), /^Error: time: invalid duration "abc"$/);
  assert.throws(() => parseGoDuration('10'), /^Error: time: missing unit in duration "10"$/);
  assert.throws(() => parseGoDuration('3x'), /^Error: time: unknown unit "x" in duration "3x"$/);
  assert.throws(() => parseGoDuration(''), /invalid duration/);
});

test('Go durations print as time.Duration.String does', { timeout: 10_000 }, () => {
  assert.equal(formatGoDuration(0), '0s');
  assert.equal(formatGoDuration(1e6), '1ms');
  assert.equal(formatGoDuration(1.5e9), '1.5s');
  assert.equal(formatGoDuration(30e9), '30s');
  assert.equal(formatGoDuration(90e9), '1m30s');
  assert.equal(formatGoDuration(3600e9), '1h0m0s');
  assert.equal(formatGoDuration(500), '500ns');
  assert.equal(formatGoDuration(2500), '2.5µs');
});

test("a health check is refused with dockerd's messages", { timeout: 10_000 }, () => {
  const refused = (raw: unknown, re: RegExp) => assert.throws(() => checkHealthcheck(raw), (e) => e instanceof InvalidParameter && re.test(e.message));
  refused({ Test: ['CMD', 'true'], Interval: 100_000 }, /^Interval in Healthcheck cannot be less than 1ms$/);
  refused({ Test: ['CMD', 'true'], Timeout: 1 }, /^Timeout in Healthcheck cannot be less than 1ms$/);
  refused({ Test: ['CMD', 'true'], Retries: -1 }, /^Retries in Healthcheck cannot be negative$/);
  refused({ Test: ['CMD', 'true'], StartPeriod: 999_999 }, /^StartPeriod in Healthcheck cannot be less than 1ms$/);
  refused({ Test: ['CMD', 'true'], StartInterval: 10 }, /^StartInterval in Healthcheck cannot be less than 1ms$/);
  refused({ Test: 'true' }, /Healthcheck.Test/);
  refused({ Test: ['CMD'] }, /needs a command/);
  assert.equal(checkHealthcheck(null), undefined);
  assert.deepEqual(checkHealthcheck({ Test: ['NONE'], Interval: 0, Timeout: 0, StartPeriod: 0, StartInterval: 0, Retries: 0 }), { Test: ['NONE'] });
  // Zero means "the default" and is never refused.
  assert.equal(checkHealthcheck({ Test: ['CMD-SHELL', 'true'], Interval: 0, Timeout: 1e6 })?.Timeout, 1e6);
});

test("the user's health check takes what it leaves unset from the image's", { timeout: 10_000 }, () => {
  const image = { Test: ['CMD-SHELL', 'image-check'], Interval: 5e9, Retries: 7 };
  assert.deepEqual(mergeHealthcheck(undefined, image), image);
  assert.deepEqual(mergeHealthcheck({ Test: [], Interval: 0, Timeout: 2e9, StartPeriod: 0, StartInterval: 0, Retries: 0 }, image),
    { Test: ['CMD-SHELL', 'image-check'], Interval: 5e9, Timeout: 2e9, Retries: 7 });
  assert.deepEqual(mergeHealthcheck({ Test: ['NONE'] }, image)?.Test, ['NONE']);
  assert.equal(mergeHealthcheck(undefined, undefined), undefined);
});

test('the probe command: CMD as given, CMD-SHELL through /bin/sh -c (or the Shell), NONE and unknown types none', { timeout: 10_000 }, () => {
  const c = (Healthcheck: unknown, Shell?: string[]) => ({ config: { Healthcheck, Shell } }) as unknown as Container;
  assert.deepEqual(probeCommand(c({ Test: ['CMD', 'cat', '/x'] })), ['cat', '/x']);
  assert.deepEqual(probeCommand(c({ Test: ['CMD-SHELL', 'exit 1'] })), ['/bin/sh', '-c', 'exit 1']);
  assert.deepEqual(probeCommand(c({ Test: ['CMD-SHELL', 'exit 1'] }, ['/bin/ash', '-ec'])), ['/bin/ash', '-ec', 'exit 1']);
  assert.equal(probeCommand(c({ Test: ['NONE'] })), null);
  assert.equal(probeCommand(c({ Test: ['HTTP', 'x'] })), null);
  assert.equal(probeCommand(c(undefined)), null);
});

test('HEALTHCHECK as an import change line, like the Dockerfile instruction', { timeout: 10_000 }, () => {
  assert.deepEqual(applyChanges({}, ['HEALTHCHECK --interval=1s --retries=2 CMD wget -q localhost']).Healthcheck,
    { Test: ['CMD-SHELL', 'wget -q localhost'], Interval: 1e9, Retries: 2 });
  assert.deepEqual(applyChanges({}, ['HEALTHCHECK --timeout=500ms --start-period=1m --start-interval=2s CMD ["cat", "/ok"]']).Healthcheck,
    { Test: ['CMD', 'cat', '/ok'], Timeout: 5e8, StartPeriod: 60e9, StartInterval: 2e9 });
  assert.deepEqual(applyChanges({}, ['HEALTHCHECK NONE']).Healthcheck, { Test: ['NONE'] });
  assert.throws(() => applyChanges({}, ['HEALTHCHECK --interval=1x CMD true']), /unknown unit/);
  assert.throws(() => applyChanges({}, ['HEALTHCHECK --retries=0 CMD true']), /at least 1/);
  assert.throws(() => applyChanges({}, ['HEALTHCHECK --bogus=1 CMD true']), /unknown flag: bogus/);
  assert.throws(() => applyChanges({}, ['HEALTHCHECK GET /']), /Unknown type "GET" in HEALTHCHECK/);
  assert.throws(() => applyChanges({}, ['HEALTHCHECK CMD']), /Missing command/);
});
