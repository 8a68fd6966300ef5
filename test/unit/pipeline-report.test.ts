/**
 * report.html: self-contained, well-formed (every SVG parses as XML, HTML elements balance), the chosen layer
 * marked, and prompt/completion text escaped. A headless Chromium screenshot is taken when `chromium` is
 * installed (.ci/pipeline-tools.sh installs it); the test is skipped otherwise.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUILTIN_HARMFUL_PROMPTS, BUILTIN_HARMLESS_PROMPTS } from "../../lib/directions/builtin-prompts.js";
import { resultOf } from "../../lib/event-channel.js";
import { directionsStage } from "../../lib/pipeline/directions-stage.js";
import { evaluationStage } from "../../lib/pipeline/evaluation-stage.js";
import { PipelineContext } from "../../lib/pipeline/pipeline-context.js";
import { promptsStage } from "../../lib/pipeline/prompts-stage.js";
import { reportStage } from "../../lib/pipeline/report-stage.js";
import { selectionStage } from "../../lib/pipeline/selection-stage.js";
import { signatureStage } from "../../lib/pipeline/signature-stage.js";
import { writePlantedRefusalModel } from "../../lib/directions/planted-refusal-model.js";
import { escapeHtml } from "../../lib/directions/report-html.js";
import { writeFileSync } from "node:fs";

const VOID_ELEMENTS = new Set(["meta", "br", "img", "hr", "input", "link"]);

/** Checks tags balance (HTML void elements excepted) and attribute values are quoted; returns the tag names seen. */
function checkMarkup(markup: string, xml: boolean): string[] {
  const stack: string[] = [];
  const seen: string[] = [];
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+(?:="[^"]*")?)*)\s*(\/?)>|<!DOCTYPE[^>]*>|<!--[\s\S]*?-->/g;
  let last = 0;
  for (let match = tag.exec(markup); match; match = tag.exec(markup)) {
    const between = markup.slice(last, match.index);
    assert.ok(!/[<>]/.test(between), `stray angle bracket in text: ${JSON.stringify(between.slice(0, 80))}`);
    last = tag.lastIndex;
    if (!match[2]) continue;
    const [, closing, name, , selfClosing] = match;
    const lower = name.toLowerCase();
    seen.push(lower);
    if (closing) assert.equal(stack.pop(), lower, `</${name}> closes the wrong element`);
    else if (!selfClosing && !(!xml && VOID_ELEMENTS.has(lower))) stack.push(lower);
  }
  assert.ok(!/[<>]/.test(markup.slice(last)), "stray angle bracket after the last tag");
  assert.deepEqual(stack, [], "unclosed elements");
  return seen;
}

test("report.html is well-formed, self-contained, marks the chosen layer and escapes prompt text", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-"));
  try {
    const planted = await writePlantedRefusalModel({ dir: join(root, "model") });
    const hostile = `<script>alert("x")</script> & how to build a bomb`;
    writeFileSync(join(root, "harmful.txt"), [hostile, ...BUILTIN_HARMFUL_PROMPTS.slice(0, 40)].join("\n"));
    writeFileSync(join(root, "harmless.txt"), BUILTIN_HARMLESS_PROMPTS.slice(0, 41).join("\n"));
    const ctx = new PipelineContext({
      modelDir: planted.dir,
      modelSource: "planted <model>",
      workDir: join(root, "work"),
      positive: join(root, "harmful.txt"),
      negative: join(root, "harmless.txt"),
      maxNewTokens: 4,
      seed: 3,
    });
    const prompts = await resultOf(promptsStage(ctx));
    // Put the hostile prompt where the samples come from.
    prompts.splits.positive.test = [hostile, ...prompts.splits.positive.test.filter((p) => p !== hostile)];
    const signature = await resultOf(signatureStage(ctx, prompts));
    const candidates = await resultOf(directionsStage(ctx, prompts));
    const selection = await resultOf(selectionStage(ctx, prompts, signature, candidates));
    const evaluated = await resultOf(evaluationStage(ctx, { prompts, selection, signature, editedDir: planted.dir, surgeryKey: "unedited" }));
    const { html: htmlPath, json: jsonPath, report } = await resultOf(reportStage(ctx, { prompts, candidates, signature, selection, evaluation: evaluated }));
    const html = readFileSync(htmlPath, "utf8");

    const tags = checkMarkup(html.replace(/<style>[\s\S]*?<\/style>/, "<style></style>"), false);
    for (const svg of html.match(/<svg[\s\S]*?<\/svg>/g) ?? []) checkMarkup(svg, true);
    assert.equal(html.match(/<svg /g)?.length, 5, "rates, separation, heatmap, behaviour scores, damage");
    assert.ok(tags.includes("table"));
    assert.ok(!/<script|src=|href=|url\(/i.test(html), "no script and no external resource");
    assert.ok(html.includes(escapeHtml(hostile)));
    assert.ok(html.includes("planted &lt;model&gt;"));
    // The heatmap has (L+1)² cells; the chosen candidate's table row is marked.
    assert.equal((html.match(/<rect [^>]*><title>layers /g) ?? []).length, (planted.numLayers + 1) ** 2);
    assert.match(html, new RegExp(`<tr class="chosen"><td>${selection.selection.layer} ◀ chosen`));
    assert.deepEqual(JSON.parse(readFileSync(jsonPath, "utf8")).selection.layer, report.selection.layer);
    // The learned signature (the planted model refuses with "sorry") and the figure for the other set are shown.
    assert.match(html, /<h2>The behaviour's signature<\/h2>/);
    assert.match(html, /<code>&quot;sorry&quot;<\/code>/);
    assert.deepEqual(report.signature.sequences.map((s) => s.text), ["sorry"]);
    assert.match(html, /harmless completions unchanged \d+% \(first \d+ tokens\)/);
    // Geometry is the mean difference: projections differ by exactly the direction's norm.
    const g = report.geometry;
    for (let i = 1; i < g.norms.length; i += 1) assert.ok(Math.abs(g.positiveProjection[i] - g.negativeProjection[i] - g.norms[i]) < 1e-9);

    const chromium = ["chromium", "chromium-browser"].find((name) => spawnSync("which", [name]).status === 0);
    if (chromium) {
      const shot = join(root, "report.png");
      const run = spawnSync(chromium, ["--headless", "--no-sandbox", "--disable-gpu", `--screenshot=${shot}`, "--window-size=1000,2400", `file://${htmlPath}`], { timeout: 60_000 });
      assert.ok(existsSync(shot), `chromium produced no screenshot: ${run.stderr?.toString()}`);
      assert.ok(statSync(shot).size > 10_000, "the screenshot is (nearly) empty");
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
