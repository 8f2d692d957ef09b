/** Which endpoints a connection tries, in order (src/mesh/balance.ts). */
import t from 'tap';
import { orderEndpoints, type BalanceInput } from '../../src/mesh/balance.js';

const ep = (allocId: string, nodeId: string) => ({ allocId, nodeId, ports: { 80: 1 } });
const endpoints = [ep('a1', 'n1'), ep('a2', 'n2'), ep('a3', 'n2'), ep('a4', 'n1'), ep('a5', 'n3')];
const base: BalanceInput = { endpoints, selfNodeId: 'n1', strategy: 'round-robin', turn: 0, active: () => 0, failed: new Set() };
const ids = (input: Partial<BalanceInput>) => orderEndpoints({ ...base, ...input }).map((e) => e.allocId);

t.test('local endpoints come first, then the others; round-robin rotates within each group', async (t) => {
  t.same(ids({ turn: 0 }), ['a1', 'a4', 'a2', 'a3', 'a5']);
  t.same(ids({ turn: 1 }), ['a4', 'a1', 'a3', 'a5', 'a2']);
  t.same(ids({ selfNodeId: 'n9', turn: 2 }), ['a3', 'a4', 'a5', 'a1', 'a2'], 'no local endpoint: all rotate together');
  const firsts = new Map<string, number>();
  for (let turn = 0; turn < 300; turn++) {
    const first = ids({ selfNodeId: 'n9', turn })[0]!;
    firsts.set(first, (firsts.get(first) ?? 0) + 1);
  }
  t.same([...firsts.values()], [60, 60, 60, 60, 60], 'every endpoint is first equally often');
});

t.test('least-connections prefers the least busy, ties in rotation order', async (t) => {
  const active = (id: string) => ({ a1: 5, a4: 1, a2: 3, a3: 0, a5: 3 })[id] ?? 0;
  t.same(ids({ strategy: 'least-connections', active }), ['a4', 'a1', 'a3', 'a2', 'a5']);
  t.same(ids({ strategy: 'least-connections', active, turn: 1 }), ['a4', 'a1', 'a3', 'a5', 'a2']);
});

t.test('endpoints that just failed are tried last, even local ones', async (t) => {
  t.same(ids({ failed: new Set(['a1', 'a2']) }), ['a4', 'a3', 'a5', 'a1', 'a2']);
  t.same(ids({ endpoints: [] }), []);
});
