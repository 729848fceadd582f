/**
 * attnscope imported from outside its repository: a notebook or script in
 * another folder has no access to attnscope's deno.json, so its import map
 * does not apply. lib/ and server/ name npm packages by full `npm:`
 * specifiers (kept equal to deno.json's), and these tests check both that
 * rule and a real import by file path, with no config, from a new folder.
 */

import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);
const IMPORTS: Record<string, string> = JSON.parse(
  await Deno.readTextFile(new URL("deno.json", ROOT)),
).imports;

/** Every .ts file under a folder of the repository, but the bundle. */
async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (path: string) => {
    for await (const entry of Deno.readDir(new URL(path, ROOT))) {
      const child = `${path}/${entry.name}`;
      if (entry.isDirectory) await walk(child);
      else if (child.endsWith(".ts") && !child.endsWith("_bundle.ts")) {
        out.push(child);
      }
    }
  };
  await walk(dir);
  return out.sort();
}

/** The module specifiers a file's code (not its JSDoc) uses. */
function specifiers(source: string): string[] {
  const code = source.split("\n").filter((line) =>
    !/^\s*(\*|\/\/|\/\*)/.test(line)
  ).join("\n");
  const found: string[] = [];
  const patterns = [
    /^\s*(?:import|export|\})[^"\n]*?\bfrom\s*"([^"]+)"/gm,
    /^\s*import\s*"([^"]+)"/gm,
    /\bimport\(\s*"([^"]+)"/g,
    /\bimport\.meta\.resolve\(\s*"([^"]+)"/g,
    // Specifiers held in constants (a lazy dynamic import).
    /"(npm:[^"]+)"/g,
  ];
  for (const pattern of patterns) {
    for (const match of code.matchAll(pattern)) found.push(match[1]);
  }
  return found;
}

Deno.test("lib/ and server/ import npm packages by the npm: specifiers deno.json maps, never by import-map names", async () => {
  const values = new Set(Object.values(IMPORTS));
  const problems: string[] = [];
  for (const file of [...await sources("lib"), ...await sources("server")]) {
    const text = await Deno.readTextFile(new URL(file, ROOT));
    for (const spec of new Set(specifiers(text))) {
      if (spec.startsWith(".") || spec.startsWith("node:")) continue;
      if (spec.startsWith("npm:")) {
        // The package part (before a subpath) must be deno.json's range.
        const at = spec.indexOf("@", spec.startsWith("npm:@") ? 5 : 4);
        const slash = spec.indexOf("/", at);
        const pkg = slash < 0 ? spec : spec.slice(0, slash);
        if (!values.has(pkg)) {
          problems.push(`${file}: ${spec} is not a deno.json import value`);
        }
      } else {
        problems.push(
          `${file}: "${spec}" needs an import map; use ${
            IMPORTS[spec] ?? "an npm: specifier"
          }`,
        );
      }
    }
  }
  assert.deepEqual(problems, []);
});

Deno.test("mod.ts and server/mod.ts import by file path from a new folder with no config, and capture, chart and rasterize", async () => {
  const dir = await Deno.makeTempDir({ prefix: "attnscope-outside-" });
  try {
    const mod = new URL("mod.ts", ROOT).href;
    const server = new URL("server/mod.ts", ROOT).href;
    await Deno.writeTextFile(
      `${dir}/notebook.ts`,
      `import { attentionHeatmap, captureAttention } from ${
        JSON.stringify(mod)
      };
import { startDemoServer } from ${JSON.stringify(server)};
await using demo = await startDemoServer();
const { text, attention } = await captureAttention({ baseUrl: demo.baseUrl, prompt: "alpha: 1729\\nalpha:", layers: [0] });
const png = await attentionHeatmap(attention![0]).toPNG({ scale: 1 });
console.log(JSON.stringify({ text: text.trim(), layers: Object.keys(attention!), png: [...png.subarray(1, 4)].map((c) => String.fromCharCode(c)).join("") }));
`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-config", "--allow-all", "notebook.ts"],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.ok(out.success, stderr);
    const result = JSON.parse(new TextDecoder().decode(out.stdout).trim());
    assert.deepEqual(
      result,
      { text: "1729", layers: ["0"], png: "PNG" },
      stderr,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
