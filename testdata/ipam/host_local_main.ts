/**
 * Test entry point: runs the host-local plugin as a process, for tests that
 * need real exec semantics (concurrency, side-by-side runs with the reference).
 *
 * @module
 */
import { denoIo, runPlugin } from "../../lib/cni/skel.ts";
import { plugin } from "../../plugins/host_local.ts";

Deno.exit(await runPlugin(plugin, denoIo()));
