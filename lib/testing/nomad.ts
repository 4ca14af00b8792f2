/**
 * Nomad's default bridge network, as the demo and the benchmarks drive it.
 *
 * @module
 */

/**
 * Nomad's default bridge conflist (`client/allocrunner/cni/bridge.go`, see
 * nomad-and-podman.md A1), tab-indented as Nomad serialises it, with
 * host-local's `dataDir` moved out of `/var/run/cni` into `dataDir`.
 */
export function nomadConflist(dataDir: string): string {
  return JSON.stringify(
    {
      cniVersion: "0.4.0",
      name: "nomad",
      plugins: [
        { type: "loopback" },
        {
          type: "bridge",
          bridge: "nomad",
          ipMasq: true,
          isGateway: true,
          forceAddress: true,
          hairpinMode: false,
          ipam: {
            type: "host-local",
            ranges: [[{ subnet: "172.26.64.0/20" }]],
            routes: [{ dst: "0.0.0.0/0" }],
            dataDir,
          },
        },
        { type: "firewall", backend: "iptables", iptablesAdminChainName: "NOMAD-ADMIN" },
        { type: "portmap", capabilities: { portMappings: true }, snat: true },
      ],
    },
    null,
    "\t",
  );
}
