import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { escapeHtml, renderDashboard } from "./dashboard.ts";
import { collectInventory } from "./inventory.ts";
import { FIXTURE_NOW, statusFixture } from "./_testing.ts";

Deno.test("escapeHtml() escapes all five HTML-special characters", () => {
  assertEquals(
    escapeHtml(`<a href="x">'&'</a>`),
    "&#60;a href=&#34;x&#34;&#62;&#39;&#38;&#39;&#60;/a&#62;",
  );
});

Deno.test("renderDashboard() shows networks with usage bars and highlights stale rows", async () => {
  await using fx = await statusFixture();
  const inv = await collectInventory(fx.sources);
  const html = renderDashboard({
    inventory: inv,
    statuses: { alpha: { state: "failed", code: 50, msg: "no addresses" } },
    // (the shadowed second "alpha" must not show the first one's STATUS)
    version: "0.1.0",
    now: FIXTURE_NOW,
  });
  assertStringIncludes(html, 'data-network="alpha"');
  assertStringIncludes(html, 'data-network="gamma"');
  // Known only from its lease dir: listed without a config.
  assertStringIncludes(html, '<section class="card network" data-network="nomad">');
  assertEquals(html.match(/no config file/g)?.length, 1);
  assertStringIncludes(html, 'aria-valuenow="4" aria-valuemin="0" aria-valuemax="253"');
  assertStringIncludes(html, '<div class="bar full"'); // beta's 2/2 range
  assertEquals(html.match(/STATUS 50/g)?.length, 1);
  assertEquals(html.match(/<tr class="attachment stale">/g)?.length, 1);
  assertEquals(html.match(/<tr class="attachment">/g)?.length, 2);
  assertEquals(html.match(/<tr class="lease stale">/g)?.length, 5);
  assertStringIncludes(html, "8080→80/tcp");
  assertStringIncludes(html, "127.0.0.1:9090→90/tcp");
});

Deno.test("renderDashboard() escapes every value read from disk", async () => {
  await using fx = await statusFixture();
  const html = renderDashboard({ inventory: await collectInventory(fx.sources), now: FIXTURE_NOW });
  assertEquals(html.includes("<img"), false);
  assertStringIncludes(html, "&#60;img src=x onerror=alert(1)&#62;");
  // The only tags are the page's own.
  const tags = new Set([...html.matchAll(/<([a-z0-9]+)/g)].map((m) => m[1]));
  for (const tag of tags) {
    assert(
      [
        "html",
        "head",
        "meta",
        "title",
        "style",
        "body",
        "header",
        "h1",
        "span",
        "b",
        "main",
        "h2",
        "section",
        "div",
        "table",
        "thead",
        "tr",
        "th",
        "tbody",
        "td",
        "ul",
        "li",
        "footer",
        "a",
        "p",
      ].includes(tag),
      tag,
    );
  }
});
