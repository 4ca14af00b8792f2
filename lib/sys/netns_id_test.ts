import { assertEquals } from "@std/assert";
import { currentNetnsInode } from "./netns_id.ts";

Deno.test("currentNetnsInode() names the namespace file's inode", () => {
  assertEquals(currentNetnsInode(), String(Deno.statSync("/proc/thread-self/ns/net").ino));
});
