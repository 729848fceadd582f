import assert from "node:assert/strict";
import { assertGolden, normalizeMarkup } from "./charts_golden.ts";

Deno.test("normalizeMarkup() rounds numbers, renumbers ids and digests PNGs", () => {
  const a = normalizeMarkup(
    '<pattern id="attnscope-masked-7"></pattern><rect x="1.23456" fill="url(#attnscope-masked-7)"></rect><image href="data:image/png;base64,AAAA"></image>',
  );
  const b = normalizeMarkup(
    '<pattern id="attnscope-masked-12"></pattern><rect x="1.2344" fill="url(#attnscope-masked-12)"></rect><image href="data:image/png;base64,AAAA"></image>',
  );
  assert.equal(a, b);
  assert.match(a, /id="id-1"/);
  assert.match(a, /url\(#id-1\)/);
  assert.match(a, /x="1.2"/);
  assert.match(a, /data:image\/png;sha256=[0-9a-f]{16}/);
});

Deno.test("assertGolden() writes a -changed file beside the golden on mismatch", async () => {
  const name = `golden-selftest-${crypto.randomUUID()}.svg`;
  const golden = new URL(`./goldens/${name}`, import.meta.url);
  const changed = new URL(
    `./goldens/${name.replace(".svg", "-changed.svg")}`,
    import.meta.url,
  );
  // This test checks the comparing mode, also when goldens are being rewritten.
  const update = Deno.env.get("UPDATE_GOLDENS");
  Deno.env.delete("UPDATE_GOLDENS");
  try {
    await Deno.writeTextFile(golden, normalizeMarkup("<svg><g></g></svg>"));
    await assertGolden(name, "<svg><g></g></svg>");
    await assert.rejects(
      assertGolden(name, "<svg><rect></rect></svg>"),
      /differs from golden/,
    );
    assert.match(await Deno.readTextFile(changed), /<rect>/);
    // A later match removes the stale -changed file.
    await assertGolden(name, "<svg><g></g></svg>");
    await assert.rejects(Deno.stat(changed), Deno.errors.NotFound);
  } finally {
    if (update !== undefined) Deno.env.set("UPDATE_GOLDENS", update);
    await Deno.remove(golden).catch(() => {});
    await Deno.remove(changed).catch(() => {});
  }
});
