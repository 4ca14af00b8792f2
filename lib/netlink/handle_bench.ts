/**
 * Cost of the bridge plugin's netlink work done in-process, in private
 * namespaces: `sudo deno bench -A lib/netlink/handle_bench.ts`. Only the ADD
 * side is timed; deleting the veth (kernel RCU wait, ~15 ms) is not.
 *
 * @module
 */
import { createNetns, ROOT } from "../testing/netns.ts";
import { openNetnsFd } from "../sys/netns.ts";
import { openHandle } from "./handle.ts";

if (ROOT) {
  const host = await createNetns("cbx-nl");
  const ctr = await createNetns("cbx-nl");
  globalThis.addEventListener("unload", () => {
    for (const ns of [host, ctr]) {
      new Deno.Command("ip", { args: ["netns", "del", ns.name] }).outputSync();
    }
  });
  const hostHandle = openHandle({ netns: host.path });
  const ctrNs = openNetnsFd(ctr.path);

  Deno.bench({
    name: "ADD: bridge + veth (peer in netns) + master + up + addr + route, one handle per ns",
    n: 40,
    warmup: 5,
    fn(b) {
      b.start();
      using ctrHandle = openHandle({ netns: ctr.path });
      const bridge = hostHandle.linkAddBridge({ name: "cbr0" });
      hostHandle.addrAdd(bridge.index, { address: "10.88.0.1", prefixLength: 16 });
      hostHandle.linkSetUp(bridge.index);
      const veth = hostHandle.linkAddVeth({ name: "veth-b", peerName: "eth0", peerNetns: ctrNs });
      hostHandle.linkSetMaster(veth.index, bridge.index);
      hostHandle.linkSetUp(veth.index);
      const eth0 = ctrHandle.linkIndex("eth0");
      ctrHandle.addrAdd(eth0, { address: "10.88.0.2", prefixLength: 16 });
      ctrHandle.linkSetUp(eth0);
      ctrHandle.routeAdd({ gw: "10.88.0.1" });
      b.end();
      hostHandle.linkDel(veth.index);
      hostHandle.linkDel(bridge.index);
    },
  });

  Deno.bench({
    name: "ADD on an existing bridge: veth + master + up + addr + up + route (perf-baseline §5)",
    n: 40,
    warmup: 5,
    fn(b) {
      const bridge = hostHandle.linkAddBridge({ name: "cbr1" });
      b.start();
      using ctrHandle = openHandle({ netns: ctr.path });
      const veth = hostHandle.linkAddVeth({ name: "veth-c", peerName: "eth0", peerNetns: ctrNs });
      hostHandle.linkSetMaster(veth.index, bridge.index);
      hostHandle.linkSetUp(veth.index);
      const eth0 = ctrHandle.linkIndex("eth0");
      ctrHandle.addrAdd(eth0, { address: "10.89.0.2", prefixLength: 16 });
      ctrHandle.linkSetUp(eth0);
      ctrHandle.routeAdd({ gw: "10.89.0.1", oif: eth0 });
      b.end();
      hostHandle.linkDel(veth.index);
      hostHandle.linkDel(bridge.index);
    },
  });

  Deno.bench({
    name: "RTM_GETLINK dump (3 links)",
    n: 2000,
    fn() {
      hostHandle.linkList();
    },
  });

  Deno.bench({
    name: "openHandle({ netns }) (setns, socket, setns back)",
    n: 2000,
    fn() {
      openHandle({ netns: ctr.path }).close();
    },
  });
}
