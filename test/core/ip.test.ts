import test from 'ava';
import { cidrContains, classifyAddress, formatIp, isGlobalAddress, parseCidr, parseIp, prefixOf } from '../../core/ip.js';

const valid: [string, string][] = [
  ['10.0.0.1', '10.0.0.1'],
  ['0.0.0.0', '0.0.0.0'],
  ['::1', '::1'],
  ['::', '::'],
  ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
  ['fd00:10:244::1f', 'fd00:10:244::1f'],
  ['::ffff:10.1.2.3', '10.1.2.3'],
  ['fe80::1%eth0', 'fe80::1'],
  ['2001:db8:0:1:0:0:0:0', '2001:db8:0:1::'],
];
for (const [input, canonical] of valid) {
  test(`parses ${input}`, (t) => {
    const ip = parseIp(input);
    t.truthy(ip);
    t.is(formatIp(ip!), canonical);
  });
}

for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.-4', 'abc', '1::2::3', '12345::', 'host.example.com', ':::']) {
  test(`rejects ${JSON.stringify(bad)}`, (t) => {
    t.is(parseIp(bad), null);
  });
}

test('CIDR membership for IPv4 and IPv6, non-byte prefixes included', (t) => {
  const ten = parseCidr('10.0.0.0/8');
  const cgnat = parseCidr('100.64.0.0/10');
  const ula = parseCidr('fc00::/7');
  t.true(cidrContains(ten, parseIp('10.244.3.7')!));
  t.false(cidrContains(ten, parseIp('11.0.0.1')!));
  t.true(cidrContains(cgnat, parseIp('100.127.255.255')!));
  t.false(cidrContains(cgnat, parseIp('100.128.0.0')!));
  t.true(cidrContains(ula, parseIp('fd00:10:244::5')!));
  t.false(cidrContains(ula, parseIp('2001:db8::1')!));
  t.false(cidrContains(ten, parseIp('fd00::1')!));
  t.is(parseCidr('10.1.2.3/8').text, '10.0.0.0/8');
});

test('bad CIDRs are refused with the text in the message', (t) => {
  t.throws(() => parseCidr('10.0.0.0/33'), { message: /10\.0\.0\.0\/33/ });
  t.throws(() => parseCidr('nope/8'), { message: /nope/ });
});

test('address classes', (t) => {
  t.is(classifyAddress(parseIp('127.0.0.53')!), 'loopback');
  t.is(classifyAddress(parseIp('::1')!), 'loopback');
  t.is(classifyAddress(parseIp('0.0.0.0')!), 'any');
  t.is(classifyAddress(parseIp('::')!), 'any');
  t.is(classifyAddress(parseIp('169.254.169.254')!), 'link-local');
  t.is(classifyAddress(parseIp('fe80::1')!), 'link-local');
  t.is(classifyAddress(parseIp('203.0.113.5')!), 'public');
});

test('globally routable addresses: private, shared, special ranges are not; documentation ranges stand for public ones', (t) => {
  for (const a of ['8.8.8.8', '52.216.1.1', '203.0.113.5', '2600:1f18::1', '2001:db8::1']) t.true(isGlobalAddress(parseIp(a)!), a);
  for (const a of ['10.1.1.1', '172.31.0.1', '192.168.1.1', '100.64.0.1', '127.0.0.1', '169.254.169.254', '224.0.0.1', '255.255.255.255', '0.1.2.3', 'fd00::1', 'fe80::1', 'ff02::1', '::1']) {
    t.false(isGlobalAddress(parseIp(a)!), a);
  }
  t.is(prefixOf(parseIp('52.216.77.2')!, 16), '52.216.0.0/16');
  t.is(prefixOf(parseIp('2600:1f18:77::1')!, 32), '2600:1f18::/32');
});
