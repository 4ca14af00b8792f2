// Entry point for tests that run `cnibox exec` as its own process (for
// example inside `ip netns exec`), before main.ts exists.
import { run } from "../../commands/exec.ts";

Deno.exit(await run(Deno.args));
