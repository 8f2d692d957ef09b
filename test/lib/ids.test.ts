import t from 'tap';
import { fnv1a32, newId, resolveIdPrefix, shortId, uniquePrefixLength, parseNodeId, isNodeId } from '../../src/lib/ids.js';
import { Random } from '../../src/lib/random.js';

t.test('new ids are 32 hex characters and deterministic for a seed', async (t) => {
  const a = newId(Random.fromSeed(1));
  t.match(a, /^[0-9a-f]{32}$/);
  t.equal(newId(Random.fromSeed(1)), a);
  t.equal(shortId(a), a.slice(0, 8));
});

t.test('prefix lookup: unique, exact, ambiguous, missing, empty', async (t) => {
  const ids = ['a1b2c3d4e5', 'a1b2ffff00', 'bbbb0000aa', 'cc'];
  t.equal(resolveIdPrefix('bb', ids), 'bbbb0000aa');
  t.equal(resolveIdPrefix('A1B2C', ids), 'a1b2c3d4e5', 'prefixes are case-insensitive');
  t.equal(resolveIdPrefix('cc', [...ids, 'cc11']), 'cc', 'an exact match wins');
  t.throws(() => resolveIdPrefix('a1b2', ids), { code: 'ERR_AMBIGUOUS_ID', message: /matches 2 ids/ });
  t.throws(() => resolveIdPrefix('zz', ids, 'allocation'), { code: 'ERR_NOT_FOUND', message: /no allocation starts with "zz"/ });
  t.throws(() => resolveIdPrefix('  ', ids), { code: 'ERR_INVALID_ARGUMENT' });
});

t.test('unique prefix length grows only when 8 characters are not enough', async (t) => {
  t.equal(uniquePrefixLength(['0123456789', 'abcdef0123']), 8);
  t.equal(uniquePrefixLength(['0123456789ab', '0123456789cd']), 11);
});

t.test('node ids are 64 hex characters', async (t) => {
  const id = 'ab'.repeat(32);
  t.ok(isNodeId(id));
  t.equal(parseNodeId(id.toUpperCase()), id);
  t.throws(() => parseNodeId('xyz', '--peer'), { code: 'ERR_INVALID_ARGUMENT', message: /--peer: expected 64 hex/ });
});

t.test('fnv1a32: the standard FNV-1a 32-bit values', async (t) => {
  t.equal(fnv1a32(''), 0x811c9dc5);
  t.equal(fnv1a32('a'), 0xe40c292c);
  t.equal(fnv1a32('foobar'), 0xbf9cf968);
});
