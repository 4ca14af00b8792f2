/**
 * Rules as nf_tables holds them, for tests that compare what cnibox wrote
 * without a tool against what iptables wrote: every rule of a table's
 * chains in both families, in order, without the attributes that differ
 * between namespaces (handle, position).
 *
 * @module
 */
import { nftRulePayloads } from "../firewall/nfnetlink.ts";
import { decodeRawAttrs } from "../netlink/codec.ts";
import { NLA_TYPE_MASK } from "../netlink/consts.ts";
import { withNetns } from "../sys/netns.ts";
import type { TestNetns } from "./netns.ts";

const NFTA_RULE_HANDLE = 3;
const NFTA_RULE_POSITION = 6;

/**
 * `<family> <chain>: <attributes>` per rule of every chain of iptables table
 * `table` in `ns` (chains as `iptables-save` names them, both families).
 */
export async function nftTableDump(ns: TestNetns, table: string): Promise<string[]> {
  const chainsOf = async (tool: string) =>
    (await ns.exec(tool, ["-t", table])).stdout.split("\n")
      .filter((line) => line.startsWith(":")).map((line) => line.slice(1).split(" ")[0]);
  const chains = { ip: await chainsOf("iptables-save"), ip6: await chainsOf("ip6tables-save") };
  return withNetns(
    ns.path,
    () =>
      (["ip", "ip6"] as const).flatMap((family) =>
        chains[family].flatMap((chain) =>
          nftRulePayloads(family, table, chain).map((payload) =>
            `${family} ${chain}: ` +
            decodeRawAttrs(payload.subarray(4))
              .filter((attr) =>
                ![NFTA_RULE_HANDLE, NFTA_RULE_POSITION].includes(attr.type & NLA_TYPE_MASK)
              )
              .map((attr) => `${attr.type & NLA_TYPE_MASK}:${[...attr.data].join(",")}`).join(" ")
          )
        )
      ),
  );
}
