/**
 * Where an executable came from (core/event ExecutableOrigin), as Falco and Tetragon say it.
 *
 * Falco: no Falco repository holds a recorded JSON record that prints these fields, so the records
 * here are the stock rules' own output fields, field by field, with the values the Falco sources say
 * they take:
 * - "Drop and execute new binary in container": falcosecurity/rules @ c72713ee:
 *   rules/falco_rules.yaml:1185-1203 (condition `proc.is_exe_upper_layer=true`, output line 1201 prints
 *   `proc.exe`, `proc.exepath`, `proc.name`, `proc.pname`, `proc.cmdline`, `evt.type`, `user.*`, and
 *   `exe_flags=%evt.arg.flags`; no `proc.is_exe_*` field itself).
 * - "Fileless execution via memfd_create": same file, :1253-1265.
 * - the flag values: falcosecurity/libs @ 48dfd53c: driver/flags_table.c:567-570 (`EXE_WRITABLE`,
 *   `EXE_UPPER_LAYER`, `EXE_FROM_MEMFD`, `EXE_LOWER_LAYER`), and Falco's own end-to-end expectation of a
 *   memfd exec: falcosecurity/falco @ 13074749: e2e_tests/evtgen_suite/fileless_execution_via_memfd_create.yaml:16,
 *   `evt.arg.flags: "EXE_WRITABLE|EXE_FROM_MEMFD"`.
 * - the booleans: JSON true/false in json_output (falcosecurity/libs @ 48dfd53c:
 *   userspace/libsinsp/sinsp_filtercheck.cpp:193-194), the strings "true"/"false" in the gRPC outputs
 *   API (same file:422-427).
 *
 * Tetragon: a real process_exec record (fixtures/real/tetragon.jsonl line 2, cilium/tetragon
 * testdata/events.json:2) with the `binary_properties` values that Tetragon's docs print from a real
 * run: cilium/tetragon @ 4fbfe2d7: docs/content/en/docs/policy-library/observability/_index.md:330
 * (a memfd exec: `{"file":{"inode":{"number":"45021","links":0}}}`), :370 (a deleted binary, the same
 * shape) and :121 (sudo: `{"setuid":0,"privileges_changed":["PRIVILEGES_RAISED_EXEC_FILE_SETUID"]}`).
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { falcoRecordToEvent } from '../../agent/sources/falco-event.js';
import { isRejected, type ParseResult } from '../../agent/sources/record.js';
import { tetragonRecordToEvent } from '../../agent/sources/tetragon-event.js';
import type { ActivityEvent } from '../../core/event.js';
import { falcoRecord } from '../helpers/falco.js';

const ctx = { node: 'node-1', source: 'test' };

function ok(r: ParseResult): ActivityEvent {
  if (isRejected(r)) throw new Error(`rejected: ${r.reject} ${r.detail}`);
  return r;
}

/** The output fields of the stock rule "Drop and execute new binary in container" (rules/falco_rules.yaml:1201). */
const DROP_AND_EXECUTE = {
  'evt.type': 'execve',
  'proc.exe': '/tmp/eg_dropped',
  'proc.exepath': '/tmp/eg_dropped',
  'proc.name': 'eg_dropped',
  'proc.pname': 'sh',
  'proc.cmdline': 'eg_dropped',
  'proc.cwd': '/',
  'user.name': 'daemon',
  'user.uid': 1,
  'user.loginuid': -1,
  'proc.tty': 0,
  'container.start_ts': 1700000000000000000,
};

const falco = (fields: Record<string, unknown>, rule = 'Driftwatch process spawned', omit: string[] = []) => ok(falcoRecordToEvent(falcoRecord({ time: '2026-11-23T08:00:00.000000000Z', fields, rule, omit }), ctx));

test('Falco: the stock drift rules say the origin by their name when they print no field or flag', (t) => {
  t.is(falco(DROP_AND_EXECUTE, 'Drop and execute new binary in container').process.origin, 'upper-layer');
  t.is(falco({ ...DROP_AND_EXECUTE, 'proc.exepath': 'memfd:eg_memfd', 'proc.exe': '/proc/self/fd/3' }, 'Fileless execution via memfd_create').process.origin, 'memfd');
  t.is(falco({}).process.origin, undefined, 'a record that says nothing has no origin (never drift)');
});

test('Falco: a memfd named runc_cloned is plumbing only on the host (container.id host); in a container it is drift, whatever proc.pname says', (t) => {
  const runcClone = { 'evt.arg.flags': 'EXE_WRITABLE|EXE_FROM_MEMFD', 'proc.exepath': 'memfd:runc_cloned:/proc/self/exe', 'proc.exe': '/proc/self/exe' };
  // The caller of memfd_create chooses the name, and proc.pname is comm (prctl PR_SET_NAME sets it).
  t.is(falco({ ...runcClone, 'proc.pname': 'runc' }).process.origin, 'memfd', 'in a container: the name proves nothing');
  t.is(falco({ ...runcClone, 'proc.pname': 'containerd-shim' }).process.origin, 'memfd');
  t.is(falco({ ...runcClone, 'container.id': 'host' }).process.origin, 'unknown', 'runc on the host: plumbing');
  t.is(falco({ ...runcClone, 'proc.exepath': 'memfd:payload', 'container.id': 'host' }).process.origin, 'memfd', 'any other memfd on the host is drift');
});

test('Falco: evt.arg.flags of an exec (EXE_UPPER_LAYER, EXE_FROM_MEMFD, EXE_LOWER_LAYER); EXE_WRITABLE alone is no drift', (t) => {
  t.is(falco({ 'evt.arg.flags': 'EXE_WRITABLE|EXE_UPPER_LAYER' }).process.origin, 'upper-layer');
  // Falco's own e2e expectation for a memfd exec.
  t.is(falco({ 'evt.arg.flags': 'EXE_WRITABLE|EXE_FROM_MEMFD' }).process.origin, 'memfd');
  t.is(falco({ 'evt.arg.flags': 'EXE_WRITABLE|EXE_LOWER_LAYER' }).process.origin, 'image');
  t.is(falco({ 'evt.arg.flags': 'EXE_WRITABLE' }).process.origin, 'unknown', 'root may write the image: writable says nothing of the layer');
  // The flags of another syscall mean something else (open flags): a connect's are not read.
  const connect = ok(falcoRecordToEvent(falcoRecord({ time: '2026-11-23T08:00:00.000000000Z', type: 'connect', fields: { 'evt.arg.flags': 'EXE_UPPER_LAYER', 'fd.name': '10.0.0.1:4000->10.0.0.2:80', 'fd.l4proto': 'tcp' } }), ctx));
  t.is(connect.process.origin, undefined);
});

test('Falco: proc.is_exe_* fields as JSON booleans and as the strings of the gRPC API; memfd first, then upper, then lower', (t) => {
  t.is(falco({ 'proc.is_exe_upper_layer': true, 'proc.is_exe_from_memfd': false }).process.origin, 'upper-layer');
  t.is(falco({ 'proc.is_exe_upper_layer': 'true' }).process.origin, 'upper-layer');
  t.is(falco({ 'proc.is_exe_upper_layer': false, 'proc.is_exe_from_memfd': true }).process.origin, 'memfd');
  t.is(falco({ 'proc.is_exe_upper_layer': 'false', 'proc.is_exe_lower_layer': 'true' }).process.origin, 'image');
  t.is(falco({ 'proc.is_exe_upper_layer': false, 'proc.is_exe_lower_layer': false, 'proc.is_exe_from_memfd': false }).process.origin, 'unknown', 'not on overlayfs (a volume, the host)');
  t.is(falco({ 'proc.is_exe_upper_layer': '<NA>', 'proc.is_exe_writable': null }).process.origin, undefined, 'absent values say nothing');
});

test('Falco: a wrong type in an origin field rejects the record, naming the field', (t) => {
  for (const [field, value] of [['proc.is_exe_upper_layer', 1], ['proc.is_exe_from_memfd', 'yes'], ['proc.is_exe_writable', {}], ['evt.arg.flags', 6]] as const) {
    const r = falcoRecordToEvent(falcoRecord({ time: '2026-11-23T08:00:00.000000000Z', fields: { [field]: value } }), ctx);
    t.true(isRejected(r), field);
    if (isRejected(r)) {
      t.is(r.reject, 'wrong_type');
      t.true(r.detail.includes(field), r.detail);
    }
  }
});

const REAL_EXEC = JSON.parse(readFileSync(new URL('../../../fixtures/real/tetragon.jsonl', import.meta.url), 'utf8').split('\n')[1]!) as { process_exec: { process: Record<string, unknown> } };

function tetragon(binaryProperties: unknown, binary?: string): ActivityEvent {
  const record = structuredClone(REAL_EXEC);
  if (binaryProperties !== undefined) record.process_exec.process.binary_properties = binaryProperties;
  if (binary !== undefined) record.process_exec.process.binary = binary;
  return ok(tetragonRecordToEvent(record, ctx));
}

test('Tetragon: binary_properties.file with zero links (the docs\' memfd and deleted-binary runs) is drift; a linked binary is unknown', (t) => {
  // docs/.../observability/_index.md:330 (memfd, /proc/self/fd/3) and :370 (deleted, /proc/self/fd/14): Tetragon cannot tell them apart.
  t.is(tetragon({ file: { inode: { number: '45021', links: 0 } } }, '/proc/self/fd/3').process.origin, 'deleted');
  t.is(tetragon({ file: { inode: { number: '4991635', links: 0 } } }, '/proc/self/fd/14').process.origin, 'deleted');
  t.is(tetragon({ file: { inode: { number: '45021', links: 0 } } }, 'memfd:payload').process.origin, 'memfd', 'a binary named memfd: is memory');
  // From gRPC the wrapper arrives as {value}; proto3 leaves a zero value out of it.
  t.is(tetragon({ file: { inode: { number: '45021', links: {} } } }).process.origin, 'deleted');
  // docs/.../observability/_index.md:121: sudo, setuid root: a privilege fact, not an origin.
  t.is(tetragon({ setuid: 0, privileges_changed: ['PRIVILEGES_RAISED_EXEC_FILE_SETUID'] }).process.origin, 'unknown');
  t.is(tetragon(undefined).process.origin, undefined, 'the real record without binary_properties (older Tetragon) has no origin');
});

test('Tetragon: a wrong type in binary_properties rejects the record', (t) => {
  for (const bad of ['x', { file: 'x' }, { file: { inode: { links: -1 } } }, { privileges_changed: 'PRIVILEGES_RAISED' }, { setuid: 'root' }]) {
    const record = structuredClone(REAL_EXEC);
    record.process_exec.process.binary_properties = bad;
    const r = tetragonRecordToEvent(record, ctx);
    t.true(isRejected(r), JSON.stringify(bad));
    if (isRejected(r)) t.is(r.reject, 'wrong_type');
  }
});
