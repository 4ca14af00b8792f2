/**
 * The dashboard in a real browser: Debian's `chromium` driven by
 * `playwright-core`, loading the page from a served instance over the status
 * fixture. Needs `/usr/bin/chromium` (apt `chromium`) and `playwright-core`
 * installed outside the project (`npm install --prefix /opt/cnibox-browser
 * playwright-core`, or set `CNIBOX_PLAYWRIGHT_CORE` to its directory);
 * without them the test is skipped and says why in its name.
 *
 * `CNIBOX_WRITE_SCREENSHOT=1` also writes the screenshot to
 * `docs/dashboard.png`.
 *
 * @module
 */
import { assert, assertEquals } from "@std/assert";
import { createRequire } from "node:module";
import { fromFileUrl, join } from "@std/path";
import { statusFixture } from "../lib/status/_testing.ts";
import { startServer } from "./serve.ts";

const CHROMIUM = "/usr/bin/chromium";
const PLAYWRIGHT = Deno.env.get("CNIBOX_PLAYWRIGHT_CORE") ??
  "/opt/cnibox-browser/node_modules/playwright-core";

function missing(): string | undefined {
  const exists = (path: string) => {
    try {
      Deno.statSync(path);
      return true;
    } catch {
      return false;
    }
  };
  if (!exists(CHROMIUM)) return `no ${CHROMIUM} (apt-get install chromium)`;
  if (!exists(join(PLAYWRIGHT, "package.json"))) {
    return `no playwright-core at ${PLAYWRIGHT} (npm install --prefix /opt/cnibox-browser playwright-core)`;
  }
  return undefined;
}

const reason = missing();
const NAME = "dashboard renders networks and attachments in headless Chromium";

// Only the types this test touches; playwright-core ships no Deno types.
interface Locator {
  count(): Promise<number>;
  first(): Locator;
  getAttribute(name: string): Promise<string | null>;
}
interface Page {
  goto(url: string): Promise<{ status(): number } | null>;
  /** Evaluates a JavaScript expression in the page (a string: Deno has no DOM types). */
  evaluate<T>(expression: string): Promise<T>;
  locator(selector: string): Locator;
  on(event: "dialog" | "pageerror", fn: (arg: unknown) => void): void;
  screenshot(options: { fullPage: boolean }): Promise<Uint8Array>;
  setViewportSize(size: { width: number; height: number }): Promise<void>;
}
interface BrowserContext {
  newPage(): Promise<Page>;
  close(): Promise<void>;
}
interface Chromium {
  launchPersistentContext(
    dir: string,
    options: { executablePath: string; headless: boolean; args: string[] },
  ): Promise<BrowserContext>;
}

Deno.test({
  name: reason ? `${NAME} (skipped: ${reason})` : NAME,
  ignore: reason !== undefined,
  async fn() {
    const { chromium } = createRequire(import.meta.url)(PLAYWRIGHT) as { chromium: Chromium };
    await using fx = await statusFixture();
    await using server = await startServer({
      deps: {
        ...fx.sources,
        runStatus: () => Promise.resolve(),
        version: { cnibox: "0.1.0", cniVersions: [], plugins: [] },
      },
      listen: { hostname: "127.0.0.1", port: 0 },
    });
    const profile = await Deno.makeTempDir({ prefix: "cbx-st-chromium-" });
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    try {
      const page = await context.newPage();
      const alerts: unknown[] = [];
      page.on("dialog", (dialog) => alerts.push(dialog));
      page.on("pageerror", (error) => alerts.push(error));
      await page.setViewportSize({ width: 1280, height: 900 });
      const response = await page.goto(server.url);
      assertEquals(response?.status(), 200);

      assertEquals(await page.locator("section.network").count(), 5);
      for (const name of ["alpha", "beta", "gamma", "nomad"]) {
        assertEquals(
          await page.locator(`section.network[data-network="${name}"]`).count() >= 1,
          true,
        );
      }
      assertEquals(await page.locator("#attachments tbody tr").count(), 3);
      assertEquals(await page.locator("#attachments tr.stale").count(), 1);
      assertEquals(await page.locator("#stale-leases tbody tr").count(), 5);
      // Stale rows are visibly highlighted: another background than healthy rows.
      const bg = (selector: string) =>
        page.evaluate<string>(
          `getComputedStyle(document.querySelector(${JSON.stringify(selector)})).backgroundColor`,
        );
      const staleBg = await bg("#attachments tr.stale td");
      const okBg = await bg("#attachments tr.attachment:not(.stale) td");
      assert(staleBg !== okBg, `stale ${staleBg} vs healthy ${okBg}`);
      // beta's 2-address range is full: its bar is drawn at 100 %.
      const full = page.locator('section[data-network="beta"] .bar.full > span').first();
      assertEquals(await full.getAttribute("style"), "width:100%");
      // The lease file holding markup shows as text, not as an element.
      assertEquals(await page.locator("img").count(), 0);
      assertEquals(alerts, []);

      const png = await page.screenshot({ fullPage: true });
      assertEquals([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
      assert(png.length > 20_000, `screenshot is only ${png.length} bytes`);
      if (Deno.env.get("CNIBOX_WRITE_SCREENSHOT") === "1") {
        await Deno.writeFile(fromFileUrl(new URL("../docs/dashboard.png", import.meta.url)), png);
      }
    } finally {
      await context.close();
      await Deno.remove(profile, { recursive: true });
    }
  },
});
