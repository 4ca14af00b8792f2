import { assertEquals, assertThrows } from "@std/assert";
import {
  aboutText,
  CNIBOX_VERSION,
  compareVersions,
  CURRENT_VERSION,
  FAMILY_VERSIONS,
  parseVersion,
  PLUGIN_VERSION_STRING,
  SUPPORTED_VERSIONS,
  UPSTREAM_RELEASE,
  versionAtLeast,
  versionFamily,
} from "./version.ts";

Deno.test("SUPPORTED_VERSIONS lists 0.1.0 through 1.1.0 in order", () => {
  assertEquals([...SUPPORTED_VERSIONS], [
    "0.1.0",
    "0.2.0",
    "0.3.0",
    "0.3.1",
    "0.4.0",
    "1.0.0",
    "1.1.0",
  ]);
  assertEquals(CURRENT_VERSION, "1.1.0");
  assertEquals(UPSTREAM_RELEASE, "1.9.1");
  assertEquals(CNIBOX_VERSION, "0.1.0");
  assertEquals(PLUGIN_VERSION_STRING, "v1.9.1+cnibox.0.1.0");
});

Deno.test("aboutText() names the plugin and our version", () => {
  assertEquals(aboutText("bridge"), "CNI bridge plugin v1.9.1+cnibox.0.1.0");
});

Deno.test("parseVersion() fills missing parts with zero", () => {
  assertEquals(parseVersion("1"), [1, 0, 0]);
  assertEquals(parseVersion("0.4"), [0, 4, 0]);
  assertEquals(parseVersion("1.1.0"), [1, 1, 0]);
  assertEquals(parseVersion("+1.01.-2"), [1, 1, -2]);
});

Deno.test("parseVersion() rejects bad versions with Go's messages", () => {
  assertThrows(() => parseVersion(""), SyntaxError, 'invalid version "": the version is empty');
  assertThrows(
    () => parseVersion("1.0.0.0"),
    SyntaxError,
    'invalid version "1.0.0.0": too many parts',
  );
  assertThrows(
    () => parseVersion("x.1"),
    SyntaxError,
    'failed to convert major version part "x": strconv.Atoi: parsing "x": invalid syntax',
  );
  assertThrows(
    () => parseVersion("1.y"),
    SyntaxError,
    'failed to convert minor version part "y": strconv.Atoi: parsing "y": invalid syntax',
  );
  assertThrows(
    () => parseVersion("1.0."),
    SyntaxError,
    'failed to convert micro version part "": strconv.Atoi: parsing "": invalid syntax',
  );
  assertThrows(
    () => parseVersion("99999999999999999999"),
    RangeError,
    'failed to convert major version part "99999999999999999999": strconv.Atoi: parsing "99999999999999999999": value out of range',
  );
});

Deno.test("compareVersions() orders numerically, not lexically", () => {
  assertEquals(compareVersions("0.10.0", "0.4.0"), 1);
  assertEquals(compareVersions("0.4.0", "0.10.0"), -1);
  assertEquals(compareVersions("1.0", "1.0.0"), 0);
  assertEquals(compareVersions("0.3.1", "0.3.0"), 1);
});

Deno.test("versionAtLeast() is Go's GreaterThanOrEqualTo", () => {
  assertEquals(versionAtLeast("0.4.0", "0.4.0"), true);
  assertEquals(versionAtLeast("0.3.1", "0.4.0"), false);
  assertEquals(versionAtLeast("1.1.0", "0.4.0"), true);
  assertEquals(versionAtLeast("1.0.0", "1.1.0"), false);
  assertThrows(() => versionAtLeast("abc", "0.4.0"), SyntaxError);
});

Deno.test("versionFamily() groups versions by result shape", () => {
  assertEquals(versionFamily(""), "020");
  assertEquals(versionFamily("0.1.0"), "020");
  assertEquals(versionFamily("0.2.0"), "020");
  assertEquals(versionFamily("0.3.0"), "040");
  assertEquals(versionFamily("0.3.1"), "040");
  assertEquals(versionFamily("0.4.0"), "040");
  assertEquals(versionFamily("1.0.0"), "100");
  assertEquals(versionFamily("1.1.0"), "100");
  assertEquals(versionFamily("1.2.0"), undefined);
  assertEquals([...FAMILY_VERSIONS["100"]], ["1.0.0", "1.1.0"]);
});
