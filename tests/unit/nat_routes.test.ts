// The default gateway and our address towards it, from /proc/net/route and
// /proc/net/fib_trie text as Linux prints it (taken from a LAN namespace of
// the port-mapping test lab, with a second interface added).

import assert from "node:assert/strict";
import {
  defaultGateway,
  localAddressToward,
  readRoutingTables,
} from "../../src/nat/routes.ts";

const ROUTES =
  "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
  "wlan0\t00000000\t0100000A\t0003\t0\t0\t600\t00000000\t0\t0\t0\n" +
  "lan0\t00000000\t014DA8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
  "lan0\t004DA8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
  "wlan0\t0000000A\t00000000\t0001\t0\t0\t600\t0000FFFF\t0\t0\t0\n" +
  "down0\t00000000\t0101A8C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n";

const FIB_TRIE = `Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 10.0.0.0/16 2 0 2
        |-- 10.0.3.7
           /32 host LOCAL
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
     +-- 192.168.77.0/24 2 0 2
        +-- 192.168.77.0/30 2 0 2
           |-- 192.168.77.0
              /24 link UNICAST
           |-- 192.168.77.2
              /32 host LOCAL
        |-- 192.168.77.255
           /32 link BROADCAST
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 192.168.77.2
        /32 host LOCAL
`;

Deno.test("routes: the default gateway is the lowest-metric default route that is up", () => {
  assert.equal(defaultGateway(ROUTES), "192.168.77.1");
  assert.equal(
    defaultGateway(ROUTES.split("\n").slice(0, 2).join("\n")),
    "10.0.0.1",
  );
  assert.equal(defaultGateway("Iface\tDestination\n"), undefined);
  assert.equal(defaultGateway(""), undefined);
  assert.equal(defaultGateway("garbage\nx y z\n\0\0\0"), undefined);
});

Deno.test("routes: our address on the interface facing a host", () => {
  const tables = { routes: ROUTES, fibTrie: FIB_TRIE };
  assert.equal(localAddressToward("192.168.77.1", tables), "192.168.77.2");
  assert.equal(localAddressToward("10.0.9.9", tables), "10.0.3.7");
  // Through the default route: the best one's interface.
  assert.equal(localAddressToward("8.8.8.8", tables), "192.168.77.2");
  // Our own addresses, loopback included, face themselves.
  assert.equal(localAddressToward("127.0.0.1", tables), "127.0.0.1");
  assert.equal(localAddressToward("10.0.3.7", tables), "10.0.3.7");
  assert.equal(localAddressToward("not an address", tables), undefined);
  assert.equal(
    localAddressToward("1.2.3.4", { routes: "", fibTrie: "" }),
    undefined,
  );
});

Deno.test("routes: this machine's own tables read and parse", () => {
  const tables = readRoutingTables();
  assert.ok(tables, "Linux has /proc/net/route");
  assert.match(tables.routes, /^Iface\s+Destination/);
  assert.equal(localAddressToward("127.0.0.1", tables), "127.0.0.1");
});

Deno.test("routes: a /32 address with an onlink default route faces the gateway", () => {
  // ip addr add 203.0.113.5/32 dev eth0; ip route add default via 198.51.100.1 dev eth0 onlink
  const routes =
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
    "eth0\t00000000\t016433C6\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
  const fibTrie = `Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
     |-- 203.0.113.5
        /32 host LOCAL
`;
  const tables = { routes, fibTrie };
  assert.equal(localAddressToward("198.51.100.1", tables), "203.0.113.5");
  // With two such addresses it cannot tell which one: none.
  const two = fibTrie + "     |-- 203.0.113.6\n        /32 host LOCAL\n";
  assert.equal(
    localAddressToward("198.51.100.1", { routes, fibTrie: two }),
    undefined,
  );
});
