import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  confField,
  declaredCniVersion,
  decodeConfigVersion,
  parseNetConf,
  parsePrevResult,
  runtimeConfigValue,
  validAttachments,
} from "./config.ts";
import { CniError } from "./error.ts";
import { encodeResult } from "./result.ts";

function cniError(fn: () => unknown): { code: number; msg: string; details?: string } {
  try {
    fn();
  } catch (error) {
    assert(error instanceof CniError, `expected a CniError, got ${error}`);
    return error.toJSON();
  }
  throw new Error("expected a throw");
}

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error("expected a throw");
}

const PREV_040 = Deno.readTextFileSync(
  new URL("../../testdata/cni/results/prev_0.4.0.json", import.meta.url),
);

Deno.test("parseNetConf() defaults cniVersion to 0.1.0", () => {
  const conf = parseNetConf('{"name":"net","type":"bridge"}');
  assertEquals(conf.cniVersion, "0.1.0");
  assertEquals(conf.name, "net");
  assertEquals(conf.type, "bridge");
  assertEquals(declaredCniVersion(conf), "");
  assertEquals(declaredCniVersion(parseNetConf('{"name":"n","cniVersion":"1.0.0"}')), "1.0.0");
  assertEquals(parseNetConf('{"name":"n","cniVersion":""}').cniVersion, "0.1.0");
});

Deno.test("parseNetConf() rejects invalid JSON with code 6 and Go's scanner message", () => {
  const cases: [string, string][] = [
    ["", "unexpected end of JSON input"],
    ["x", "invalid character 'x' looking for beginning of value"],
    ["tru", "invalid character ' ' in literal true (expecting 'e')"],
    ['{"name":"n"} x', "invalid character 'x' after top-level value"],
    ['{"name":"n",}', "invalid character '}' looking for beginning of object key string"],
    ['{"a":"\t"}', "invalid character '\\t' in string literal"],
    ['{"a" 1}', "invalid character '1' after object key"],
    ['{"a":1 "b"}', "invalid character '\"' after object key:value pair"],
    ["[1 2]", "invalid character '2' after array element"],
    ["-x", "invalid character 'x' in numeric literal"],
    ["1.}", "invalid character '}' after decimal point in numeric literal"],
    ["1e+}", "invalid character '}' in exponent of numeric literal"],
    ['"\\x"', "invalid character 'x' in string escape code"],
    ['"\\u12g4"', "invalid character 'g' in \\u hexadecimal character escape"],
    ["{", "unexpected end of JSON input"],
    ["'a'", "invalid character '\\'' looking for beginning of value"],
  ];
  for (const [text, msg] of cases) {
    assertEquals(cniError(() => parseNetConf(text)), {
      code: 6,
      msg: `error unmarshall network config: ${msg}`,
    }, text);
  }
  // A UTF-8 byte order mark is not JSON to Go.
  const bom = new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x7d]);
  assertEquals(
    cniError(() => parseNetConf(bom)).msg,
    "error unmarshall network config: invalid character 'ï' looking for beginning of value",
  );
});

Deno.test("parseNetConf() rejects non-object JSON like Go's struct decoder", () => {
  assertEquals(cniError(() => parseNetConf("[]")), {
    code: 6,
    msg:
      'error unmarshall network config: json: cannot unmarshal array into Go value of type struct { Name string "json:\\"name\\"" }',
  });
  assertEquals(
    cniError(() => parseNetConf('"s"')).msg,
    'error unmarshall network config: json: cannot unmarshal string into Go value of type struct { Name string "json:\\"name\\"" }',
  );
  assertEquals(cniError(() => parseNetConf("null")), { code: 7, msg: "missing network name" });
});

Deno.test("parseNetConf() checks the network name", () => {
  assertEquals(cniError(() => parseNetConf("{}")), { code: 7, msg: "missing network name" });
  assertEquals(cniError(() => parseNetConf('{"name":null}')).code, 7);
  assertEquals(cniError(() => parseNetConf('{"name":"a b"}')), {
    code: 7,
    msg: "invalid characters found in network name",
    details: "a b",
  });
  assertEquals(cniError(() => parseNetConf('{"name":"-n"}')).details, "-n");
  assertEquals(cniError(() => parseNetConf('{"name":5}')), {
    code: 6,
    msg:
      "error unmarshall network config: json: cannot unmarshal number into Go struct field .name of type string",
  });
  assertEquals(
    cniError(() => parseNetConf('{"name":{}}')).msg,
    "error unmarshall network config: json: cannot unmarshal object into Go struct field .name of type string",
  );
  assertEquals(parseNetConf('{"name":"a_b.c-1"}').name, "a_b.c-1");
});

Deno.test("parseNetConf() matches keys case-insensitively, last one winning", () => {
  const conf = parseNetConf('{"NAME":"upper","CniVersion":"1.0.0"}');
  assertEquals(conf.name, "upper");
  assertEquals(conf.cniVersion, "1.0.0");
  assertEquals(parseNetConf('{"name":"a","Name":"b"}').name, "b");
  assertEquals(confField(conf, "name"), "upper");
});

Deno.test("parseNetConf() rejects a non-string cniVersion with code 6", () => {
  assertEquals(cniError(() => parseNetConf('{"name":"n","cniVersion":5}')), {
    code: 6,
    msg:
      "decoding version from network config: json: cannot unmarshal number into Go struct field .cniVersion of type string",
  });
  assertEquals(decodeConfigVersion({ cniVersion: null }), "0.1.0");
});

Deno.test("parsePrevResult() returns undefined without a prevResult", () => {
  assertEquals(parsePrevResult(parseNetConf('{"name":"n","cniVersion":"1.0.0"}')), undefined);
  assertEquals(
    parsePrevResult(parseNetConf('{"name":"n","cniVersion":"1.0.0","prevResult":null}')),
    undefined,
  );
});

Deno.test("parsePrevResult() refuses a result from another family", () => {
  const conf = parseNetConf(`{"name":"n","cniVersion":"1.0.0","prevResult":${PREV_040}}`);
  assertEquals(
    message(() => parsePrevResult(conf)),
    'could not parse prevResult: result type supports [1.0.0 1.1.0] but unmarshalled CNIVersion is "0.4.0"',
  );
  const empty = parseNetConf(
    '{"name":"n","cniVersion":"0.4.0","prevResult":{"cniVersion":"","ips":[]}}',
  );
  assertEquals(
    message(() => parsePrevResult(empty)),
    'could not parse prevResult: result type supports [0.3.0 0.3.1 0.4.0] but unmarshalled CNIVersion is ""',
  );
});

Deno.test("parsePrevResult() injects the config version when the result has none", () => {
  const conf = parseNetConf(
    '{"name":"n","cniVersion":"0.4.0","prevResult":{"ips":[{"version":"4","address":"10.1.2.3/24"}]}}',
  );
  const prev = parsePrevResult(conf)!;
  assertEquals(prev.cniVersion, "0.4.0");
  assertEquals(
    encodeResult(prev, "0.4.0"),
    '{\n    "cniVersion": "0.4.0",\n    "ips": [\n        {\n            "version": "4",\n' +
      '            "address": "10.1.2.3/24"\n        }\n    ],\n    "dns": {}\n}',
  );
  // Same family, older label: converted on output.
  const older = parseNetConf(`{"name":"n","cniVersion":"0.3.1","prevResult":${PREV_040}}`);
  assertEquals(parsePrevResult(older)!.cniVersion, "0.4.0");
  assertEquals(JSON.parse(encodeResult(parsePrevResult(older)!, "0.3.1")).cniVersion, "0.3.1");
});

Deno.test("parsePrevResult() uses the declared (possibly missing) config version", () => {
  // No cniVersion in the config: Go decodes with "" (the 0.1.0/0.2.0 type).
  const conf = parseNetConf('{"name":"n","prevResult":{"ip4":{"ip":"10.0.0.2/8"}}}');
  const prev = parsePrevResult(conf)!;
  assertEquals(prev.cniVersion, "");
  assertEquals(JSON.parse(encodeResult(prev, conf.cniVersion)), {
    cniVersion: "0.1.0",
    ip4: { ip: "10.0.0.2/8" },
    dns: {},
  });
});

Deno.test("parsePrevResult() rejects a prevResult that is not an object", () => {
  const conf = parseNetConf('{"name":"n","cniVersion":"1.0.0","prevResult":[]}');
  assertThrows(() => parsePrevResult(conf), TypeError, "map[string]interface {}");
});

Deno.test("runtimeConfigValue() reads runtimeConfig keys", () => {
  const conf = parseNetConf(
    '{"name":"n","runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}}',
  );
  assertEquals(runtimeConfigValue(conf, "portMappings"), [
    { hostPort: 8080, containerPort: 80, protocol: "tcp" },
  ]);
  assertEquals(runtimeConfigValue(conf, "mac"), undefined);
  assertEquals(runtimeConfigValue(parseNetConf('{"name":"n"}'), "mac"), undefined);
});

Deno.test("validAttachments() reads GC's cni.dev/valid-attachments", () => {
  const conf = parseNetConf(
    '{"name":"n","cniVersion":"1.1.0","cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]}',
  );
  assertEquals(validAttachments(conf), [{ containerID: "c1", ifname: "eth0" }]);
  assertEquals(validAttachments(parseNetConf('{"name":"n"}')), undefined);
  assertThrows(
    () => validAttachments(parseNetConf('{"name":"n","cni.dev/valid-attachments":{}}')),
    TypeError,
  );
});
