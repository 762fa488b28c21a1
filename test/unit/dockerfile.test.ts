/** The Dockerfile parser and Docker's variable expansion, on the cases the Dockerfile reference documents. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse, splitStages, splitWords, DockerfileError } from '../../src/build/parser.js';
import { expandWord, expandWords } from '../../src/build/shell.js';

const env = new Map([['v', 'abc'], ['empty', ''], ['path', 'a/b/c.tar.gz'], ['sp', 'x y']]);

test('expansion: $v, ${v} and the modifiers, set, empty and unset', () => {
  const cases: [string, string][] = [
    ['$v', 'abc'], ['${v}', 'abc'], ['pre${v}post', 'preabcpost'], ['$v-x', 'abc-x'], ['$nope', ''],
    ['${nope:-def}', 'def'], ['${empty:-def}', 'def'], ['${v:-def}', 'abc'],
    ['${nope-def}', 'def'], ['${empty-def}', ''], ['${v-def}', 'abc'],
    ['${nope:+alt}', ''], ['${empty:+alt}', ''], ['${v:+alt}', 'alt'],
    ['${nope+alt}', ''], ['${empty+alt}', 'alt'], ['${v+alt}', 'alt'],
    ['${nope:-${v}}', 'abc'], ['${nope:-"a b"}', 'a b'],
    ['${path#*/}', 'b/c.tar.gz'], ['${path##*/}', 'c.tar.gz'], ['${path%.*}', 'a/b/c.tar'], ['${path%%.*}', 'a/b/c'],
    ['$', '$'], ['a$', 'a$'], ['$ x', '$ x'], ['$1', ''],
  ];
  for (const [word, want] of cases) assert.equal(expandWord(word, env), want, word);
});

test('expansion: quotes and escapes as the Dockerfile reference describes', () => {
  const cases: [string, string][] = [
    ["'$v'", '$v'], ['"$v"', 'abc'], ['\\$v', '$v'], ['"\\$v"', '$v'], ['"a\\b"', 'a\\b'], ['a\\ b', 'a b'],
    ['"a\\"b"', 'a"b'], ["'a\\b'", 'a\\b'], ['"it\'s"', "it's"], ['x"$v"y\'$v\'', 'xabcy$v'], ['\\\\', '\\'],
  ];
  for (const [word, want] of cases) assert.equal(expandWord(word, env), want, word);
  assert.equal(expandWord('a`$v b`"c', env, '`'), 'a$v b"c');
  assert.equal(expandWord('C:\\dir\\$v', env, '`'), 'C:\\dir\\abc');
});

test('expansion: errors for unterminated quotes, a missing brace, bad modifiers and :?', () => {
  assert.throws(() => expandWord("'abc", env), /matching single-quote/);
  assert.throws(() => expandWord('"abc', env), /matching double-quote/);
  assert.throws(() => expandWord('${v', env), /missing '}'/);
  assert.throws(() => expandWord('${v:x}', env), /unsupported modifier/);
  assert.throws(() => expandWord('${nope:?must be set}', env), /nope: must be set/);
  assert.equal(expandWord('${v:?must be set}', env), 'abc');
  assert.throws(() => expandWord('${empty?x}', new Map()), /empty: x/);
});

test('expandWords splits on unquoted whitespace only', () => {
  assert.deepEqual(expandWords('a "b c" d\\ e $v', env), ['a', 'b c', 'd e', 'abc']);
});

test('splitWords keeps quotes for later expansion (ENV, LABEL, ARG)', () => {
  assert.deepEqual(splitWords('a="b c" d=e\\ f g=\'h i\'', '\\'), ['a="b c"', 'd=e\\ f', "g='h i'"]);
});

test('instructions are case-insensitive; comments and blank lines are skipped; lines are numbered', () => {
  const df = parse('# a comment\n\nfrom busybox\n  # indented comment\nRuN echo hi\ncmd ["sh"]\n');
  assert.deepEqual(df.instructions.map((i) => [i.cmd, i.line]), [['from', 3], ['run', 5], ['cmd', 6]]);
  assert.deepEqual(df.instructions[2]!.json, ['sh']);
});

test('continuations: backslash, comments and empty lines inside, leading whitespace of later lines kept', () => {
  const df = parse('FROM x\nRUN echo a \\\n# comment inside\n\n    b \\\n  c\nCMD x\n');
  const run = df.instructions[1]!;
  assert.equal(run.rest, 'echo a     b   c');
  assert.equal(run.line, 2);
  assert.equal(run.endLine, 6);
  assert.equal(df.instructions[2]!.line, 7);
  assert.equal(df.warnings.length, 1);
  // A backslash followed by trailing blanks still continues the line.
  assert.equal(parse('FROM x\nRUN a \\  \n b\n').instructions[1]!.rest, 'a  b');
  // The last line may end in a continuation.
  assert.equal(parse('FROM x\nRUN a \\').instructions[1]!.rest, 'a');
});

test('directives: escape=` changes the continuation character; directives only at the very top', () => {
  const df = parse('# escape=`\nFROM x\nRUN dir c:\\ `\n  && echo\n');
  assert.equal(df.escape, '`');
  assert.equal(df.instructions[1]!.rest, 'dir c:\\   && echo');
  const late = parse('# comment\n# escape=`\nFROM x\nRUN a `\n');
  assert.equal(late.escape, '\\');
  assert.equal(late.instructions[1]!.rest, 'a `');
  assert.equal(parse('# syntax=docker/dockerfile:1\nFROM x\n').syntax, 'docker/dockerfile:1');
  assert.throws(() => parse('# escape=x\nFROM x\n'), /invalid escape token 'x'/);
  assert.throws(() => parse('# escape=\\\n# escape=`\nFROM x\n'), /only one escape parser directive/);
  // Unknown directives are comments; a directive after an instruction is a comment.
  assert.equal(parse('# foo=bar\nFROM x\n# escape=`\nRUN a `\n').escape, '\\');
});

test('exec form vs shell form, and JSON that is not an array of strings is shell form', () => {
  const [, a, b, c, e] = parse('FROM x\nCMD ["echo", "a b"]\nCMD [ "a", ]\nENTRYPOINT echo hi\nRUN ["sh", 1]\n').instructions;
  assert.deepEqual(a!.json, ['echo', 'a b']);
  assert.equal(b!.json, null);
  assert.deepEqual(b!.args, ['[ "a", ]']);
  assert.equal(c!.json, null);
  assert.equal(e!.json, null);
});

test('flags: parsed per instruction, unknown ones refused with the line', () => {
  const [, copy, run] = parse('FROM x\nCOPY --from=build --chown=1:2 --link a b\nRUN --mount=type=cache,target=/x --network=none ls\n').instructions;
  assert.deepEqual(copy!.flags, [{ name: 'from', value: 'build' }, { name: 'chown', value: '1:2' }, { name: 'link', value: null }]);
  assert.deepEqual(copy!.args, ['a', 'b']);
  assert.equal(run!.rest, 'ls');
  assert.deepEqual(run!.flags.map((f) => f.name), ['mount', 'network']);
  assert.throws(() => parse('FROM x\n\nCOPY --frob=1 a b\n'), (e: unknown) => e instanceof DockerfileError && /line 3: unknown flag: frob/.test(e.message));
  const hc = parse('FROM x\nHEALTHCHECK --interval=5s --retries=3 CMD true\n').instructions[1]!;
  assert.deepEqual(hc.flags.map((f) => f.name), ['interval', 'retries']);
});

test('heredocs: several per line, <<- strips tabs, quoted names do not expand, bodies end at the name', () => {
  const df = parse('FROM x\nRUN <<EOF\necho hi\n  echo $HOME\nEOF\nCOPY <<a <<-"b" /dst/\none\na\n\t\ttwo\n\tb\nCMD x\n');
  const [, run, copy, cmd] = df.instructions;
  assert.deepEqual(run!.heredocs, [{ name: 'EOF', expand: true, chomp: false, content: 'echo hi\n  echo $HOME\n' }]);
  assert.equal(run!.endLine, 5);
  assert.deepEqual(copy!.heredocs, [
    { name: 'a', expand: true, chomp: false, content: 'one\n' },
    { name: 'b', expand: false, chomp: true, content: 'two\n' },
  ]);
  assert.deepEqual(copy!.args, ['<<a', '<<-"b"', '/dst/']);
  assert.equal(cmd!.line, 11);
  assert.throws(() => parse('FROM x\nRUN <<EOF\necho\n'), /line 2: unterminated heredoc EOF/);
  // Not on other instructions.
  assert.equal(parse('FROM x\nENV a=<<EOF\nCMD x\n').instructions.length, 3);
});

test('ONBUILD wraps one instruction; chaining and FROM are refused', () => {
  const ob = parse('FROM x\nONBUILD RUN echo hi\n').instructions[1]!;
  assert.equal(ob.sub!.cmd, 'run');
  assert.equal(ob.sub!.rest, 'echo hi');
  assert.throws(() => parse('FROM x\nONBUILD ONBUILD RUN x\n'), /Chaining ONBUILD/);
  assert.throws(() => parse('FROM x\nONBUILD FROM y\n'), /FROM isn't allowed as an ONBUILD trigger/);
});

test('errors: unknown instruction with its line, empty file, missing FROM, bad FROM, no arguments', () => {
  assert.throws(() => parse('FROM x\n\nFROB y\n'), /dockerfile parse error on line 3: unknown instruction: FROB/);
  assert.throws(() => parse('\n# only a comment\n\n'), /cannot be empty/);
  assert.throws(() => splitStages(parse('RUN x\n')), /line 1: no build stage in current context/);
  assert.throws(() => splitStages(parse('FROM a b\n')), /FROM requires either one or three arguments/);
  assert.throws(() => parse('FROM x\nRUN\n'), /line 2: RUN requires at least one argument/);
  assert.throws(() => splitStages(parse('FROM a AS x\nFROM b AS X\n')), /duplicate stage name "x"/);
});

test('stages: global ARGs, names lower-cased, --platform kept', () => {
  const { globalArgs, stages } = splitStages(parse('ARG V=1\nFROM --platform=linux/amd64 busybox:${V} AS Build\nRUN a\nFROM scratch\nCOPY --from=build /a /a\n'));
  assert.equal(globalArgs.length, 1);
  assert.deepEqual(stages.map((s) => [s.name, s.base, s.platform, s.instructions.length]), [['build', 'busybox:${V}', 'linux/amd64', 1], [null, 'scratch', null, 1]]);
});
