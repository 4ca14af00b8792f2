import { assertEquals } from "@std/assert";
import { formatChainName, nftInstanceHash, nftNetworkHash, sha512Hex } from "./chain_name.ts";

// The long container id of the reference's portmap_iptables_test.go.
const UPSTREAM_ID =
  "icee6giejonei6sohng6ahngee7laquohquee9shiGo7fohferakah3Feiyoolu2pei7ciPhoh7shaoX6vai3vuf0ahfaeng8yohb9ceu0daez5hashee8ooYai5wa3y";

Deno.test("formatChainName() matches chains the reference bridge and portmap created", async () => {
  assertEquals(await formatChainName("mynet", "abc123"), "CNI-70a29d9dc18bc4d652ea5d59");
  assertEquals(
    await formatChainName("mynet", "abc123", { prefix: "DN-" }),
    "CNI-DN-70a29d9dc18bc4d652ea5",
  );
});

Deno.test("formatChainName() reproduces the reference's unit-test vectors", async () => {
  assertEquals(
    await formatChainName("testNetName", UPSTREAM_ID, { prefix: "DN-" }),
    "CNI-DN-bfd599665540dd91d5d28",
  );
  assertEquals(
    await formatChainName("test", UPSTREAM_ID, { prefix: "DN-" }),
    "CNI-DN-67e92b96e692a494b6b85",
  );
});

Deno.test("formatChainName() always yields 28 characters", async () => {
  for (const prefix of ["", "DN-", "SN-"]) {
    assertEquals((await formatChainName("n", "x", { prefix })).length, 28);
  }
});

Deno.test("nftNetworkHash() and nftInstanceHash() match the reference's test vectors", async () => {
  assertEquals(await nftNetworkHash("unit-test"), "6fd94d501e58f0aa");
  assertEquals(
    await nftInstanceHash("unit-test", { ifName: "eth0", containerId: "one" }),
    "6fd94d501e58f0aa-287fc69eff0574a2",
  );
});

Deno.test("sha512Hex() hashes UTF-8 bytes", async () => {
  assertEquals(
    (await sha512Hex("")).slice(0, 16),
    "cf83e1357eefb8bd",
  );
});

Deno.test("formatChainName() hashes network + id without a separator", async () => {
  // "ab"+"c" and "a"+"bc" collide by design (the reference does the same).
  assertEquals(await formatChainName("ab", "c"), await formatChainName("a", "bc"));
});

Deno.test("sha512Hex() answers each text with its own digest, also past the digests it keeps", async () => {
  const direct = async (text: string) =>
    Array.from(
      new Uint8Array(await crypto.subtle.digest("SHA-512", new TextEncoder().encode(text))),
      (b) => b.toString(16).padStart(2, "0"),
    ).join("");
  const texts = Array.from({ length: 300 }, (_, i) => `net${i % 7}-container${i}`);
  const first = await Promise.all(texts.map(sha512Hex)); // more than are kept
  const again = await Promise.all([...texts].reverse().map(sha512Hex));
  for (const i of [0, 1, 150, 255, 256, 299]) {
    assertEquals(first[i], await direct(texts[i]));
    assertEquals(again[texts.length - 1 - i], first[i]);
  }
  assertEquals(new Set(first).size, texts.length);
});
