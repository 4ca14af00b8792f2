/**
 * The bad-input corpus (`testdata/bad-input/`): every case runs our plugin
 * (or `cnibox exec`) inside a private host namespace against a private
 * container namespace and must fail cleanly: exit 1, a CNI error JSON with
 * the expected code on stdout (exec: cnitool-style text on stderr, nothing on
 * stdout), and no change to links, addresses, routes, iptables, nft,
 * sysctls, leases or the result cache. Where the reference plugin can run
 * the same input, its code is compared too: equal, or a documented
 * deliberate difference.
 *
 * Cases marked `defect` fail until the named defect (docs/hardening.md) is fixed.
 *
 * @module
 */
import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { ROOT } from "../lib/testing/netns.ts";
import { HAVE_REFERENCE } from "../lib/testing/harness.ts";
import { type BadInputCase, caseWorld, loadCases, runCase } from "./_corpus.ts";

const CASES = loadCases();

Deno.test("the bad-input corpus has at least 60 cases covering every plugin and cnibox exec", () => {
  assert(CASES.length >= 60, `only ${CASES.length} cases`);
  const plugins = new Set(CASES.map((c) => c.plugin));
  for (const name of ["loopback", "bridge", "host-local", "firewall", "portmap", "exec"]) {
    assert(plugins.has(name as BadInputCase["plugin"]), `no case for ${name}`);
  }
  for (const c of CASES) {
    assert(c.description, `${c.id} has no description`);
    if (c.plugin === "exec") assertEquals(c.expect.exit, 1, `${c.id} must expect exit 1`);
    else assert(typeof c.expect.code === "number", `${c.id} has no expected code`);
  }
});

function name(c: BadInputCase): string {
  const want = c.plugin === "exec" ? `exit ${c.expect.exit}` : `code ${c.expect.code}`;
  const tag = c.defect ? `KNOWN DEFECT ${c.defect}: ` : "";
  return `${tag}bad input ${c.id}: ${c.description} -> ${want}, nothing changed`;
}

for (const c of CASES) {
  Deno.test({
    name: name(c),
    ignore: !ROOT,
    async fn() {
      await using world = await caseWorld(c);
      const ours = await runCase(c, world);
      const context = `stdout: ${ours.stdout.slice(0, 400)}\nstderr: ${ours.stderr.slice(0, 400)}`;
      if (c.plugin === "exec") {
        assertEquals(ours.exit, c.expect.exit, context);
        assertEquals(ours.stdout, "", "cnibox exec prints nothing on stdout when it fails");
        assertStringIncludes(ours.stderr, c.expect.stderr ?? "");
      } else {
        assertEquals(ours.exit, 1, context);
        assert(ours.error, `stdout is not a CNI error JSON: ${context}`);
        assertEquals(ours.error.code, c.expect.code, `${ours.error.msg}`);
        if (c.expect.msg) assertStringIncludes(ours.error.msg, c.expect.msg);
      }
      assertEquals(ours.changes, [], "the failed run changed the node");

      if (c.reference === undefined || c.plugin === "exec" || !HAVE_REFERENCE) return;
      const ref = await runCase(c, world, { reference: true });
      const refCode = ref.exit === 0 ? 0 : ref.error?.code;
      const want = c.reference === "same" ? c.expect.code : c.reference.code;
      assertEquals(
        refCode,
        want,
        `reference: exit ${ref.exit}, ${ref.stdout.slice(0, 300)}`,
      );
    },
  });
}
