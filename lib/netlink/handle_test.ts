import { assert, assertEquals, assertThrows } from "@std/assert";
import { createNetns, mustSh, ROOT, sh, type TestNetns } from "../testing/netns.ts";
import { openNetnsFd } from "../sys/netns.ts";
import {
  AF_INET,
  AF_INET6,
  IFA_F_NODAD,
  IFA_F_NOPREFIXROUTE,
  RT_SCOPE_LINK,
  RTPROT_STATIC,
} from "./consts.ts";
import { isExist, isNotFound, LinkNotFoundError, NetlinkError } from "./error.ts";
import { type NetlinkHandle, openHandle } from "./handle.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

async function ipJson(ns: TestNetns, args: string[]): Promise<Json> {
  return JSON.parse(await mustSh("ip", ["-n", ns.name, "-j", ...args]));
}

/** What the kernel here supports, probed with `ip` in a throwaway namespace. */
async function probe(): Promise<{ vlanFiltering: boolean; dummy: boolean }> {
  if (!ROOT) return { vlanFiltering: false, dummy: false };
  await using ns = await createNetns("cbx-nl");
  const vlan = await sh("ip", [
    "-n",
    ns.name,
    "link",
    "add",
    "b",
    "type",
    "bridge",
    "vlan_filtering",
    "1",
  ]);
  const dummy = await sh("ip", ["-n", ns.name, "link", "add", "d", "type", "dummy"]);
  return { vlanFiltering: vlan.code === 0, dummy: dummy.code === 0 };
}

const KERNEL = await probe();

function handles(
  a: TestNetns,
  b: TestNetns,
): { host: NetlinkHandle; ctr: NetlinkHandle } & Disposable {
  const host = openHandle({ netns: a.path });
  const ctr = openHandle({ netns: b.path });
  return {
    host,
    ctr,
    [Symbol.dispose]() {
      host.close();
      ctr.close();
    },
  };
}

Deno.test({
  name: "NetlinkHandle builds bridge + veth (peer in another netns), addresses and routes",
  ignore: !ROOT,
  async fn() {
    await using a = await createNetns("cbx-nl");
    await using b = await createNetns("cbx-nl");
    using h = handles(a, b);
    using ctrNs = openNetnsFd(b.path);

    const bridge = h.host.linkAddBridge({ name: "cbr0", mtu: 1450, mac: "02:00:00:aa:00:01" });
    assertEquals([bridge.kind, bridge.mtu, bridge.mac, bridge.vlanFiltering], [
      "bridge",
      1450,
      "02:00:00:aa:00:01",
      false,
    ]);
    const veth = h.host.linkAddVeth({
      name: "veth-cbx",
      peerName: "eth0",
      peerNetns: ctrNs,
      mtu: 1450,
      peerMac: "02:00:00:bb:00:02",
    });
    h.host.linkSetMaster("veth-cbx", bridge.index);
    h.host.linkSetUp("veth-cbx");
    h.host.linkSetUp(bridge.index);
    h.host.linkSetHairpin("veth-cbx", true);
    h.host.linkSetIsolated(veth.index, true);

    h.ctr.addrAdd("eth0", { address: "10.77.0.2", prefixLength: 24 });
    h.ctr.addrAdd("eth0", { address: "fd77::2", prefixLength: 64, flags: IFA_F_NODAD });
    h.ctr.linkSetUp("eth0");
    h.ctr.routeAdd({ gw: "10.77.0.1" });
    h.ctr.routeAdd({
      dst: { address: "10.99.0.0", prefixLength: 16 },
      gw: "10.77.0.1",
      oif: "eth0",
      priority: 50,
      mtu: 1400,
      advmss: 1360,
    });
    h.ctr.routeAdd({ gw: "fd77::1", oif: "eth0" });

    // Our view.
    const port = h.host.linkByName("veth-cbx");
    assertEquals(
      [
        port.kind,
        port.masterIndex,
        port.mtu,
        port.up,
        port.slaveKind,
        port.bridgePort?.hairpin,
        port.bridgePort?.isolated,
      ],
      ["veth", bridge.index, 1450, true, "bridge", true, true],
    );
    const eth0 = h.ctr.linkByName("eth0");
    assertEquals([eth0.kind, eth0.mac, eth0.mtu, eth0.linkIndex], [
      "veth",
      "02:00:00:bb:00:02",
      1450,
      veth.index,
    ]);
    assert(eth0.linkNetnsId !== undefined && eth0.linkNetnsId >= 0);
    assertEquals(h.host.linkByIndex(bridge.index).name, "cbr0");
    const v4 = h.ctr.addrList({ link: "eth0", family: AF_INET });
    assertEquals(v4.map((x) => [x.address, x.prefixLength, x.broadcast, x.label]), [
      ["10.77.0.2", 24, "10.77.0.255", "eth0"],
    ]);
    const v6 = h.ctr.addrList({ link: eth0.index, family: AF_INET6 }).filter((x) => x.scope === 0);
    assertEquals(v6.map((x) => [x.address, x.prefixLength, (x.flags & IFA_F_NODAD) !== 0]), [
      ["fd77::2", 64, true],
    ]);
    const routes = h.ctr.routeList({ family: AF_INET });
    const byDst = (dst: string | undefined) =>
      routes.find((r) => (r.dst ? `${r.dst.address}/${r.dst.prefixLength}` : undefined) === dst);
    assertEquals([byDst(undefined)?.gw, byDst(undefined)?.oif], ["10.77.0.1", eth0.index]);
    const special = byDst("10.99.0.0/16");
    assertEquals(
      [special?.gw, special?.priority, special?.mtu, special?.advmss, special?.protocol],
      [
        "10.77.0.1",
        50,
        1400,
        1360,
        3,
      ],
    );
    assertEquals(
      h.ctr.routeList({ family: AF_INET6 }).find((r) => r.dst === undefined)?.gw,
      "fd77::1",
    );

    // iproute2's view.
    const [ipPort] = await ipJson(a, ["-d", "link", "show", "veth-cbx"]);
    assertEquals(
      [
        ipPort.master,
        ipPort.mtu,
        ipPort.linkinfo.info_slave_data.hairpin,
        ipPort.linkinfo.info_slave_data.isolated,
      ],
      ["cbr0", 1450, true, true],
    );
    const [ipEth0] = await ipJson(b, ["addr", "show", "eth0"]);
    assertEquals(ipEth0.address, "02:00:00:bb:00:02");
    const addrs = ipEth0.addr_info.filter((x: Json) => x.scope === "global");
    assertEquals(addrs.map((x: Json) => [x.local, x.prefixlen, x.broadcast ?? null]), [
      ["10.77.0.2", 24, "10.77.0.255"],
      ["fd77::2", 64, null],
    ]);
    const ipRoutes = await ipJson(b, ["-4", "route", "show"]);
    assertEquals(ipRoutes.find((r: Json) => r.dst === "default")?.gateway, "10.77.0.1");
    const ipSpecial = ipRoutes.find((r: Json) => r.dst === "10.99.0.0/16");
    assertEquals([ipSpecial.gateway, ipSpecial.metric, ipSpecial.metrics], ["10.77.0.1", 50, [{
      mtu: 1400,
      advmss: 1360,
    }]]);
    assertEquals((await ipJson(b, ["-6", "route", "show", "default"]))[0].gateway, "fd77::1");

    // Tear down.
    h.ctr.routeDel({ dst: { address: "10.99.0.0", prefixLength: 16 }, gw: "10.77.0.1" });
    h.ctr.routeDel({ gw: "10.77.0.1" });
    h.ctr.addrDel("eth0", { address: "10.77.0.2", prefixLength: 24 });
    assertEquals(await ipJson(b, ["-4", "route", "show"]), []);
    h.host.linkDel("veth-cbx");
    assertThrows(() => h.ctr.linkByName("eth0"), LinkNotFoundError);
    assertEquals(h.host.linkList().map((l) => l.name).sort(), ["cbr0", "lo"]);
  },
});

Deno.test({
  name: "NetlinkHandle reports kernel errors as errno values",
  ignore: !ROOT,
  async fn() {
    await using a = await createNetns("cbx-nl");
    await using b = await createNetns("cbx-nl");
    using h = handles(a, b);
    h.host.linkAddBridge({ name: "cbr0" });
    const dup = assertThrows(() => h.host.linkAddBridge({ name: "cbr0" }), NetlinkError);
    assert(isExist(dup));
    assertEquals(dup.message, `Cannot add bridge "cbr0": File exists (EEXIST)`);

    const missing = assertThrows(() => h.host.linkByName("nope0"), LinkNotFoundError);
    assertEquals([missing.errno, missing.code, missing.link], [19, "ENODEV", "nope0"]);
    assert(isNotFound(missing));
    assertThrows(() => h.host.linkByIndex(9999), LinkNotFoundError);
    assertThrows(() => h.host.linkDel("nope0"), LinkNotFoundError);
    const delIndex = assertThrows(() => h.host.linkDel(9999), NetlinkError);
    assertEquals(delIndex.code, "ENODEV");

    h.host.linkAddVeth({ name: "v0", peerName: "v1" });
    assertEquals(
      assertThrows(() => h.host.linkAddVeth({ name: "v2", peerName: "v0" }), NetlinkError).code,
      "EEXIST",
    );
    h.host.addrAdd("v0", { address: "10.8.0.1", prefixLength: 24 });
    assert(
      isExist(assertThrows(() => h.host.addrAdd("v0", { address: "10.8.0.1", prefixLength: 24 }))),
    );
    const noAddr = assertThrows(() =>
      h.host.addrDel("v0", { address: "10.8.0.9", prefixLength: 24 })
    );
    assert(isNotFound(noAddr), String(noAddr));
    const noRoute = assertThrows(
      () => h.host.routeDel({ dst: { address: "10.55.0.0", prefixLength: 16 } }),
      NetlinkError,
    );
    assertEquals(noRoute.code, "ESRCH");
    assert(isNotFound(noRoute));
    const unreachable = assertThrows(() => h.host.routeAdd({ gw: "192.0.2.1" }), NetlinkError);
    assertEquals(unreachable.code, "ENETUNREACH");
    assertThrows(
      () => h.host.linkAddBridge({ name: "a-name-that-is-too-long" }),
      RangeError,
      "1-15 bytes",
    );
  },
});

Deno.test({
  name: "NetlinkHandle link setters match iproute2",
  ignore: !ROOT,
  async fn() {
    await using a = await createNetns("cbx-nl");
    await using b = await createNetns("cbx-nl");
    using h = handles(a, b);
    const bridge = h.host.linkAddBridge({ name: "cbr0" });
    h.host.linkAddVeth({ name: "v0", peerName: "v1", mtu: 1400 });
    assertEquals(h.host.linkByName("v1").mtu, 1400);
    h.host.linkSetMtu("v0", 1300);
    h.host.linkSetMac("v0", "02:00:00:00:00:42");
    h.host.linkSetPromisc("v0", true);
    h.host.linkSetMaster("v0", "cbr0");
    let [ipV0] = await ipJson(a, ["link", "show", "v0"]);
    assertEquals([ipV0.mtu, ipV0.address, ipV0.flags.includes("PROMISC"), ipV0.master], [
      1300,
      "02:00:00:00:00:42",
      true,
      "cbr0",
    ]);
    const v0 = h.host.linkByName("v0");
    assertEquals([v0.promisc, v0.masterIndex, v0.bridgePort?.hairpin], [true, bridge.index, false]);
    h.host.linkSetPromisc("v0", false);
    h.host.linkSetNoMaster("v0");
    h.host.linkSetUp("v0");
    h.host.linkSetDown("v0");
    [ipV0] = await ipJson(a, ["link", "show", "v0"]);
    assertEquals([ipV0.flags.includes("PROMISC"), ipV0.master, ipV0.flags.includes("UP")], [
      false,
      undefined,
      false,
    ]);
    h.host.linkSetName("v0", "renamed0");
    assertEquals(h.host.linkByName("renamed0").index, v0.index);
    using target = openNetnsFd(b.path);
    h.host.linkSetNsFd("renamed0", target);
    assertThrows(() => h.host.linkByName("renamed0"), LinkNotFoundError);
    assertEquals((await ipJson(b, ["link", "show", "renamed0"]))[0].mtu, 1300);
    assertEquals(h.ctr.linkByName("renamed0").mac, "02:00:00:00:00:42");

    const ours = h.host.linkList().map((l) => [l.index, l.name, l.mtu, l.up]);
    const theirs = (await ipJson(a, ["link", "show"])).map((l: Json) => [
      l.ifindex,
      l.ifname,
      l.mtu,
      l.flags.includes("UP"),
    ]);
    assertEquals(ours, theirs);
    const vlans = h.host.bridgeVlanList();
    assert(vlans.has(bridge.index) || vlans.size === 0);
  },
});

Deno.test({
  name: "NetlinkHandle address replace, flags, scope and label",
  ignore: !ROOT,
  async fn() {
    await using a = await createNetns("cbx-nl");
    await using b = await createNetns("cbx-nl");
    using h = handles(a, b);
    h.host.linkAddVeth({ name: "v0", peerName: "v1" });
    h.host.linkSetUp("v0");
    h.host.addrAdd("v0", {
      address: "10.9.0.1",
      prefixLength: 24,
      flags: IFA_F_NOPREFIXROUTE,
      label: "v0:x",
      broadcast: false,
    });
    // IPv4 replace updates lifetimes (scope and broadcast stay as added).
    h.host.addrReplace("v0", {
      address: "10.9.0.1",
      prefixLength: 24,
      flags: IFA_F_NOPREFIXROUTE,
      validLifetime: 300,
      preferredLifetime: 200,
    });
    const [ipAddr] = (await ipJson(a, ["-4", "addr", "show", "v0"]))[0].addr_info;
    assertEquals(
      [ipAddr.local, ipAddr.scope, ipAddr.noprefixroute, ipAddr.broadcast, ipAddr.label],
      ["10.9.0.1", "global", true, undefined, "v0:x"],
    );
    assert(
      ipAddr.valid_life_time <= 300 && ipAddr.preferred_life_time <= 200,
      JSON.stringify(ipAddr),
    );
    const [ours] = h.host.addrList({ link: "v0", family: AF_INET });
    assertEquals(
      [ours.scope, (ours.flags & IFA_F_NOPREFIXROUTE) !== 0, ours.broadcast, ours.label],
      [
        0,
        true,
        undefined,
        "v0:x",
      ],
    );
    assert(ours.validLifetime !== undefined && ours.validLifetime <= 300);
    h.host.addrReplace("v0", { address: "10.9.1.1", prefixLength: 24, scope: RT_SCOPE_LINK });
    const added = h.host.addrList({ link: "v0", family: AF_INET }).find((x) =>
      x.address === "10.9.1.1"
    );
    assertEquals([added?.scope, added?.broadcast], [RT_SCOPE_LINK, "10.9.1.255"]);
    h.host.addrDel("v0", { address: "10.9.1.1", prefixLength: 24 });
    // IFA_F_NOPREFIXROUTE: no connected route for 10.9.0.0/24.
    assertEquals(
      h.host.routeList({ family: AF_INET }).filter((r) => r.dst?.address === "10.9.0.0"),
      [],
    );
    h.host.addrDel("v0", { address: "10.9.0.1", prefixLength: 24 });
    assertEquals(h.host.addrList({ link: "v0", family: AF_INET }), []);
  },
});

Deno.test({
  name: "NetlinkHandle routes: tables, scope, src, protocol and replace",
  ignore: !ROOT,
  async fn() {
    await using a = await createNetns("cbx-nl");
    await using b = await createNetns("cbx-nl");
    using h = handles(a, b);
    h.host.linkAddVeth({ name: "v0", peerName: "v1" });
    h.host.linkSetUp("v0");
    h.host.linkSetUp("v1");
    h.host.addrAdd("v0", { address: "10.10.0.1", prefixLength: 24 });
    h.host.addrAdd("v0", { address: "10.10.0.5", prefixLength: 24 });
    h.host.routeAdd({
      dst: { address: "10.20.0.0", prefixLength: 16 },
      oif: "v0",
      scope: RT_SCOPE_LINK,
      src: "10.10.0.5",
      protocol: RTPROT_STATIC,
      table: 100,
    });
    h.host.routeAdd({
      dst: { address: "10.30.0.0", prefixLength: 16 },
      gw: "10.10.0.2",
      table: 1000,
    });
    const [t100] = h.host.routeList({ table: 100 });
    assertEquals([t100.dst, t100.scope, t100.src, t100.protocol, t100.table, t100.gw], [
      { address: "10.20.0.0", prefixLength: 16 },
      RT_SCOPE_LINK,
      "10.10.0.5",
      RTPROT_STATIC,
      100,
      undefined,
    ]);
    assertEquals(h.host.routeList({ table: 1000 }).map((r) => r.gw), ["10.10.0.2"]);
    assertEquals(h.host.routeList().filter((r) => r.table !== 254), []);
    assert(h.host.routeList({ table: 0 }).some((r) => r.table === 255));
    const [ipT100] = await ipJson(a, ["route", "show", "table", "100"]);
    assertEquals([ipT100.dst, ipT100.scope, ipT100.prefsrc, ipT100.protocol], [
      "10.20.0.0/16",
      "link",
      "10.10.0.5",
      "static",
    ]);
    h.host.routeReplace({
      dst: { address: "10.30.0.0", prefixLength: 16 },
      gw: "10.10.0.3",
      table: 1000,
    });
    assertEquals((await ipJson(a, ["route", "show", "table", "1000"]))[0].gateway, "10.10.0.3");
    assertEquals(h.host.routeList({ table: 1000, oif: "v0" }).length, 1);
    assertEquals(h.host.routeList({ table: 1000, oif: "v1" }).length, 0);
    h.host.routeDel({ dst: { address: "10.20.0.0", prefixLength: 16 }, table: 100 });
    assertEquals(h.host.routeList({ table: 100 }), []);
  },
});

Deno.test({
  name: `bridgeVlanAdd() sets a PVID VLAN on a port${
    KERNEL.vlanFiltering ? "" : " (skipped: this kernel lacks CONFIG_BRIDGE_VLAN_FILTERING)"
  }`,
  ignore: !ROOT || !KERNEL.vlanFiltering,
  async fn() {
    await using a = await createNetns("cbx-nl");
    await using b = await createNetns("cbx-nl");
    using h = handles(a, b);
    const bridge = h.host.linkAddBridge({ name: "cbr0", vlanFiltering: true, vlanDefaultPvid: 1 });
    assertEquals(bridge.vlanFiltering, true);
    h.host.linkAddVeth({ name: "v0", peerName: "v1" });
    h.host.linkSetMaster("v0", bridge.index);
    h.host.bridgeVlanDel("v0", 1);
    h.host.bridgeVlanAdd("v0", 10, { pvid: true, untagged: true });
    const v0 = h.host.linkIndex("v0");
    assertEquals(h.host.bridgeVlanList().get(v0), [{ flags: 6, vid: 10 }]);
    const shown = JSON.parse(
      await mustSh("ip", ["netns", "exec", a.name, "bridge", "-j", "vlan", "show", "dev", "v0"]),
    );
    assertEquals(shown[0].vlans[0].vlan, 10);
  },
});

Deno.test({
  name: "bridge VLAN requests fail with EOPNOTSUPP where the kernel lacks VLAN filtering",
  ignore: !ROOT || KERNEL.vlanFiltering,
  async fn() {
    await using a = await createNetns("cbx-nl");
    await using b = await createNetns("cbx-nl");
    using h = handles(a, b);
    const error = assertThrows(
      () => h.host.linkAddBridge({ name: "cbr0", vlanFiltering: true }),
      NetlinkError,
    );
    assertEquals(error.code, "EOPNOTSUPP");
    const bridge = h.host.linkAddBridge({ name: "cbr1" });
    h.host.linkAddVeth({ name: "v0", peerName: "v1" });
    h.host.linkSetMaster("v0", bridge.index);
    const vlan = assertThrows(
      () => h.host.bridgeVlanAdd("v0", 10, { pvid: true, untagged: true }),
      NetlinkError,
    );
    assertEquals(vlan.code, "EOPNOTSUPP");
    assertEquals(h.host.bridgeVlanList().get(h.host.linkIndex("v0")), []);
  },
});

Deno.test({
  name: `linkAddDummy() creates a dummy link${
    KERNEL.dummy ? "" : " (skipped: this kernel lacks CONFIG_DUMMY)"
  }`,
  ignore: !ROOT || !KERNEL.dummy,
  async fn() {
    await using a = await createNetns("cbx-nl");
    await using b = await createNetns("cbx-nl");
    using h = handles(a, b);
    const dummy = h.host.linkAddDummy({ name: "d0", mtu: 1280 });
    assertEquals([dummy.kind, dummy.mtu], ["dummy", 1280]);
    assertEquals((await ipJson(a, ["-d", "link", "show", "d0"]))[0].linkinfo.info_kind, "dummy");
  },
});
