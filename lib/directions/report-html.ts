/**
 * report.html: one self-contained page (inline CSS and SVG, no scripts, no network) that explains the run:
 * what was compared, the behaviour's learned signature, where the contrast lives (cosine heatmap, per-layer
 * separation), how each candidate scored and which one was chosen, and what the edit did to both sets (before/after
 * behaviour rates, negative completions unchanged, sample completions).
 * Every piece of text that came from prompts, completions or files is HTML-escaped.
 */
import { damageWarning, describeEvaluation } from "./describe-evaluation.js";
import type { PipelineReport } from "./report-json.js";

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

const fmt = (value: number | null | undefined, digits = 3): string => (value === null || value === undefined || !Number.isFinite(value) ? "–" : value.toFixed(digits));
const pct = (value: number): string => (Number.isFinite(value) ? `${(100 * value).toFixed(0)}%` : "–");

/** Blue (−1) → white (0) → red (+1). */
function divergingColor(value: number): string {
  const v = Math.max(-1, Math.min(1, value));
  const fade = (c: number) => Math.round(255 - (255 - c) * Math.abs(v));
  return v >= 0 ? `rgb(${fade(200)},${fade(40)},${fade(40)})` : `rgb(${fade(40)},${fade(80)},${fade(200)})`;
}

function heatmap(report: PipelineReport): string {
  const { cosine } = report.geometry;
  const n = cosine.length;
  const cell = Math.max(6, Math.min(24, Math.floor(480 / n)));
  const margin = 36;
  const size = margin + n * cell + 8;
  const cells: string[] = [];
  cosine.forEach((row, i) =>
    row.forEach((value, j) => {
      cells.push(
        `<rect x="${margin + j * cell}" y="${margin + i * cell}" width="${cell}" height="${cell}" fill="${divergingColor(value)}"><title>layers ${i} × ${j}: cos ${fmt(value)}</title></rect>`,
      );
    }),
  );
  const chosen = report.selection.layer;
  const labels: string[] = [];
  const step = Math.ceil(n / 16);
  for (let i = 0; i < n; i += step) {
    labels.push(`<text x="${margin - 4}" y="${margin + i * cell + cell * 0.75}" text-anchor="end" class="tick">${i}</text>`);
    labels.push(`<text x="${margin + i * cell + cell / 2}" y="${margin - 6}" text-anchor="middle" class="tick">${i}</text>`);
  }
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}" viewBox="0 0 ${size} ${size}" role="img" aria-label="cosine similarity between per-layer directions">` +
    cells.join("") +
    labels.join("") +
    `<rect x="${margin}" y="${margin + chosen * cell}" width="${n * cell}" height="${cell}" fill="none" stroke="#000" stroke-width="1.5"/>` +
    `</svg>`
  );
}

interface Series {
  name: string;
  color: string;
  values: (number | null)[];
}

/** A line chart over layer indices, with the chosen layer marked by a vertical line. */
function lineChart(params: { series: Series[]; chosen: number; yLabel: string; zeroLine?: boolean; threshold?: { value: number; label: string } }): string {
  const width = 640;
  const height = 240;
  const left = 56;
  const right = 12;
  const top = 14;
  const bottom = 34;
  const n = Math.max(...params.series.map((s) => s.values.length));
  const all = params.series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v)));
  if (params.threshold) all.push(params.threshold.value);
  if (params.zeroLine) all.push(0);
  let min = Math.min(...all);
  let max = Math.max(...all);
  if (!(max > min)) {
    min -= 1;
    max += 1;
  }
  const x = (i: number) => left + (n <= 1 ? 0 : (i / (n - 1)) * (width - left - right));
  const y = (v: number) => top + (1 - (v - min) / (max - min)) * (height - top - bottom);
  const parts: string[] = [`<rect x="${left}" y="${top}" width="${width - left - right}" height="${height - top - bottom}" fill="#fafafa" stroke="#ccc"/>`];
  for (const v of [min, (min + max) / 2, max]) {
    parts.push(`<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end" class="tick">${fmt(v, 2)}</text>`);
  }
  const step = Math.ceil(n / 16);
  for (let i = 0; i < n; i += step) parts.push(`<text x="${x(i)}" y="${height - bottom + 16}" text-anchor="middle" class="tick">${i}</text>`);
  parts.push(`<text x="${(left + width) / 2}" y="${height - 4}" text-anchor="middle" class="axis">layer index</text>`);
  parts.push(`<text x="12" y="${(top + height - bottom) / 2}" transform="rotate(-90 12 ${(top + height - bottom) / 2})" text-anchor="middle" class="axis">${escapeHtml(params.yLabel)}</text>`);
  if (params.zeroLine && min < 0 && max > 0) parts.push(`<line x1="${left}" x2="${width - right}" y1="${y(0)}" y2="${y(0)}" stroke="#999" stroke-dasharray="2 3"/>`);
  if (params.threshold) {
    parts.push(`<line x1="${left}" x2="${width - right}" y1="${y(params.threshold.value)}" y2="${y(params.threshold.value)}" stroke="#c60" stroke-dasharray="6 3"/>`);
    parts.push(`<text x="${width - right - 4}" y="${y(params.threshold.value) - 4}" text-anchor="end" class="tick">${escapeHtml(params.threshold.label)}</text>`);
  }
  parts.push(`<line x1="${x(params.chosen)}" x2="${x(params.chosen)}" y1="${top}" y2="${height - bottom}" stroke="#000" stroke-width="1.5"/>`);
  parts.push(`<text x="${x(params.chosen) + 4}" y="${height - bottom - 4}" class="tick">chosen: ${params.chosen}</text>`);
  params.series.forEach((series, k) => {
    let path = "";
    series.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) return;
      path += `${path === "" ? "M" : "L"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      parts.push(`<circle cx="${x(i).toFixed(1)}" cy="${y(v).toFixed(1)}" r="2.5" fill="${series.color}"><title>${escapeHtml(series.name)}, layer ${i}: ${fmt(v)}</title></circle>`);
    });
    if (path) parts.push(`<path d="${path}" fill="none" stroke="${series.color}" stroke-width="1.5"/>`);
    parts.push(`<rect x="${left + 8 + k * 170}" y="${top + 6}" width="10" height="10" fill="${series.color}"/><text x="${left + 22 + k * 170}" y="${top + 15}" class="tick">${escapeHtml(series.name)}</text>`);
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeHtml(params.yLabel)} per layer">${parts.join("")}</svg>`;
}

function rateBars(report: PipelineReport): string {
  const evaluation = report.evaluation!;
  const rows = [
    { label: `${report.prompts.positiveLabel}, before`, value: evaluation.before.positiveBehaviour, color: "#c33" },
    { label: `${report.prompts.positiveLabel}, after`, value: evaluation.after.positiveBehaviour, color: "#3a3" },
    { label: `${report.prompts.negativeLabel}, before`, value: evaluation.before.negativeBehaviour, color: "#c88" },
    { label: `${report.prompts.negativeLabel}, after`, value: evaluation.after.negativeBehaviour, color: "#8c8" },
    { label: `${report.prompts.negativeLabel} unchanged`, value: evaluation.negativeUnchanged, color: "#36c" },
  ];
  const width = 520;
  const bar = 22;
  const left = 170;
  const parts = rows.map((row, i) => {
    const w = Number.isFinite(row.value) ? (width - left - 50) * row.value : 0;
    const y = 8 + i * (bar + 8);
    return (
      `<text x="${left - 8}" y="${y + 16}" text-anchor="end" class="tick">${escapeHtml(row.label)}</text>` +
      `<rect x="${left}" y="${y}" width="${width - left - 50}" height="${bar}" fill="#eee"/>` +
      `<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${bar}" fill="${row.color}"/>` +
      `<text x="${left + w + 4}" y="${y + 16}" class="tick">${pct(row.value)}</text>`
    );
  });
  const height = 16 + rows.length * (bar + 8);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="behaviour rates before and after">${parts.join("")}</svg>`;
}

function candidatesTable(report: PipelineReport): string {
  if (!report.scores) return "";
  const verdicts = new Map((report.verdicts ?? []).map((v) => [v.layer, v]));
  const rows = report.scores.candidates.map((c) => {
    const verdict = verdicts.get(c.layer);
    const chosen = c.layer === report.selection.layer;
    return (
      `<tr${chosen ? ' class="chosen"' : ""}><td>${c.layer}${chosen ? " ◀ chosen" : ""}</td><td>${fmt(c.norm)}</td><td>${fmt(c.behaviour)}</td>` +
      `<td>${c.unchanged === null ? "–" : pct(c.unchanged)}</td><td>${fmt(c.kl, 4)}</td><td>${fmt(c.induced)}</td><td>${verdict ? (verdict.passed ? "kept" : escapeHtml(verdict.reasons.join("; "))) : ""}</td></tr>`
    );
  });
  const { positiveLabel, negativeLabel } = report.prompts;
  return (
    `<table><thead><tr><th>layer</th><th>‖direction‖</th><th>${escapeHtml(positiveLabel)} behaviour (ablated)</th><th>${escapeHtml(negativeLabel)} unchanged</th>` +
    `<th>KL (${escapeHtml(negativeLabel)})</th><th>induced on ${escapeHtml(negativeLabel)} (added)</th><th>filter</th></tr></thead><tbody>${rows.join("")}</tbody></table>`
  );
}

/** Vertical bars with a label under each and the value above it (values are shares in [0, 1]). */
function columnChart(params: { bars: { label: string; value: number; color: string }[]; yLabel: string; line?: { value: number; label: string } }): string {
  const width = Math.max(240, 70 * params.bars.length + 70);
  const height = 200;
  const left = 50;
  const top = 12;
  const bottom = 30;
  const plot = height - top - bottom;
  const y = (v: number) => top + (1 - Math.max(0, Math.min(1, v))) * plot;
  const parts = [`<rect x="${left}" y="${top}" width="${width - left - 8}" height="${plot}" fill="#fafafa" stroke="#ccc"/>`];
  for (const v of [0, 0.5, 1]) parts.push(`<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end" class="tick">${fmt(v, 1)}</text>`);
  parts.push(`<text x="12" y="${top + plot / 2}" transform="rotate(-90 12 ${top + plot / 2})" text-anchor="middle" class="axis">${escapeHtml(params.yLabel)}</text>`);
  params.bars.forEach((bar, i) => {
    const x = left + 20 + i * 70;
    parts.push(`<rect x="${x}" y="${y(bar.value).toFixed(1)}" width="40" height="${(top + plot - y(bar.value)).toFixed(1)}" fill="${bar.color}"><title>${escapeHtml(bar.label)}: ${fmt(bar.value)}</title></rect>`);
    parts.push(`<text x="${x + 20}" y="${(y(bar.value) - 3).toFixed(1)}" text-anchor="middle" class="tick">${fmt(bar.value, 2)}</text>`);
    parts.push(`<text x="${x + 20}" y="${height - bottom + 14}" text-anchor="middle" class="tick">${escapeHtml(bar.label)}</text>`);
  });
  if (params.line) {
    parts.push(`<line x1="${left}" x2="${width - 8}" y1="${y(params.line.value)}" y2="${y(params.line.value)}" stroke="#c60" stroke-dasharray="6 3"/>`);
    parts.push(`<text x="${width - 12}" y="${y(params.line.value) - 4}" text-anchor="end" class="tick">${escapeHtml(params.line.label)}</text>`);
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeHtml(params.yLabel)}">${parts.join("")}</svg>`;
}

type ReportTrial = NonNullable<PipelineReport["search"]>["trials"][number];

/** The trials whose behaviour and damage were both measured (an infeasible trial may have skipped its behaviour). */
function measuredTrials(search: NonNullable<PipelineReport["search"]>): (ReportTrial & { values: [number, number] })[] {
  return search.trials.filter((t): t is ReportTrial & { values: [number, number] } => t.values[0] !== null && t.values[1] !== null);
}

/** Behaviour (x) against damage (y) of every measured trial: infeasible grey, the front joined, the chosen and single-layer points marked. */
function paretoChart(search: NonNullable<PipelineReport["search"]>): string {
  const trials = measuredTrials(search);
  const width = 640;
  const height = 300;
  const left = 60;
  const right = 12;
  const top = 14;
  const bottom = 36;
  const kls = trials.map((t) => t.values[1]).filter((v) => Number.isFinite(v));
  const maxKl = Math.max(1e-6, ...kls.filter((v) => v < 10));
  const x = (v: number) => left + Math.max(0, Math.min(1, v)) * (width - left - right);
  const y = (v: number) => top + (1 - Math.min(1, v / maxKl)) * (height - top - bottom);
  const parts = [`<rect x="${left}" y="${top}" width="${width - left - right}" height="${height - top - bottom}" fill="#fafafa" stroke="#ccc"/>`];
  for (const v of [0, 0.5, 1]) parts.push(`<text x="${x(v)}" y="${height - bottom + 16}" text-anchor="middle" class="tick">${fmt(v, 1)}</text>`);
  for (const v of [0, maxKl / 2, maxKl]) parts.push(`<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end" class="tick">${fmt(v, 3)}</text>`);
  parts.push(`<text x="${(left + width) / 2}" y="${height - 4}" text-anchor="middle" class="axis">behaviour (signature probability, validation)</text>`);
  parts.push(`<text x="12" y="${(top + height - bottom) / 2}" transform="rotate(-90 12 ${(top + height - bottom) / 2})" text-anchor="middle" class="axis">damage (KL)</text>`);
  const front = new Set(search.pareto);
  for (const t of trials) {
    const fill = !t.feasible ? "#bbb" : front.has(t.number) ? "#c33" : "#69c";
    parts.push(`<circle cx="${x(t.values[0]).toFixed(1)}" cy="${y(t.values[1]).toFixed(1)}" r="3" fill="${fill}"><title>trial ${t.number}: behaviour ${fmt(t.values[0])}, KL ${fmt(t.values[1], 4)}${t.unchanged !== null ? `, unchanged ${pct(t.unchanged)}` : ""}${t.feasible ? "" : " (infeasible)"}</title></circle>`);
  }
  const frontPoints = trials.filter((t) => front.has(t.number)).sort((a, b) => a.values[0] - b.values[0]);
  if (frontPoints.length > 1) parts.push(`<path d="${frontPoints.map((t, i) => `${i ? "L" : "M"}${x(t.values[0]).toFixed(1)},${y(t.values[1]).toFixed(1)}`).join("")}" fill="none" stroke="#c33" stroke-width="1"/>`);
  const mark = (number: number | null, label: string, color: string) => {
    const t = trials.find((trial) => trial.number === number);
    if (!t) return;
    parts.push(`<circle cx="${x(t.values[0]).toFixed(1)}" cy="${y(t.values[1]).toFixed(1)}" r="7" fill="none" stroke="${color}" stroke-width="2"/>`);
    parts.push(`<text x="${(x(t.values[0]) + 9).toFixed(1)}" y="${(y(t.values[1]) - 8).toFixed(1)}" class="tick">${escapeHtml(label)}</text>`);
  };
  mark(search.singleLayerTrial, "single-layer rule", "#555");
  mark(search.chosen.number, `chosen #${search.chosen.number}`, "#000");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="behaviour against damage of every search trial">${parts.join("")}</svg>`;
}

function searchSection(report: PipelineReport): string {
  const search = report.search;
  if (!search) return "";
  const chosen = search.trials.find((t) => t.number === search.chosen.number)!;
  const unmeasured = search.trials.length - measuredTrials(search).length;
  const layers = search.alphas.attn.length;
  const alphaChart = lineChart({
    series: [
      { name: "attention α", color: "#c33", values: [...search.alphas.attn] },
      { name: "MLP α", color: "#36c", values: [...search.alphas.mlp] },
    ],
    chosen: Math.max(0, search.alphas.attn.indexOf(Math.max(...search.alphas.attn))),
    yLabel: "α of the layer's writer",
  });
  const params = Object.entries(chosen.params).map(([name, value]) => `<tr><td><code>${escapeHtml(name)}</code></td><td>${escapeHtml(typeof value === "number" ? value.toFixed(4) : String(value))}</td></tr>`).join("");
  return (
    `<h2>Search: ${search.trials.length} trials</h2>` +
    `<p>Each trial edits the model through the engine's hooks (nothing written) and is scored on the validation prompts: ` +
    `${search.objectives.map((o) => `<b>${escapeHtml(o.name)}</b>: ${escapeHtml(o.definition ?? "")}`).join("; ")}. ` +
    `A trial that changes more negative completions than allowed is infeasible (grey). The first trial took ${fmt(search.timing.firstTrialSeconds, 2)} s; ` +
    `the search ran ${fmt(search.timing.totalSeconds, 1)} s and stopped on ${escapeHtml(search.timing.stopped)}. Chosen: ${escapeHtml(search.chosen.note)}.</p>` +
    `<figure>${paretoChart(search)}<figcaption>Every trial (red: the Pareto front; circled: the chosen point and the single-layer rule's edit, trial 0)${unmeasured > 0 ? `; ${unmeasured} infeasible trial(s) are not drawn: their damage ruled them out, so their behaviour was not measured` : ""}.</figcaption></figure>` +
    `<figure>${alphaChart}<figcaption>The chosen α profile over the ${layers} layers (embedding α ${fmt(search.alphas.embed, 2)}); the surgery applies each writer's own α exactly.</figcaption></figure>` +
    `<table><thead><tr><th>parameter</th><th>chosen value</th></tr></thead><tbody>${params}</tbody></table>`
  );
}

function subspaceSection(report: PipelineReport): string {
  const sub = report.subspace;
  if (!sub) return "";
  const { positiveLabel, negativeLabel } = report.prompts;
  const left = columnChart({
    bars: [{ label: "none", value: sub.baseline.positiveBehaviour, color: "#c33" }, ...sub.steps.map((s, i) => ({ label: `k = ${i + 1}`, value: s.behaviour, color: "#3a3" }))],
    yLabel: `${positiveLabel} behaviour left`,
  });
  const induced = columnChart({
    bars: sub.steps.map((s, i) => ({ label: `r${i + 1} (layer ${s.layer})`, value: s.induced, color: "#93c" })),
    yLabel: `induced on ${negativeLabel}`,
    line: { value: sub.baseline.negativeBehaviour, label: "unedited" },
  });
  const cos = sub.cosines.map((row, i) => `<tr><th>r${i + 1}</th>${row.map((v) => `<td>${v.toFixed(6)}</td>`).join("")}</tr>`).join("");
  const rows = sub.steps
    .map((s, i) => `<tr><td>r${i + 1}</td><td>${s.layer}</td><td>${fmt(s.norm)}</td><td>${fmt(s.behaviour)}</td><td>${pct(s.unchanged)}</td><td>${fmt(s.kl, 4)}</td><td>${fmt(s.induced)}</td></tr>`)
    .join("");
  return (
    `<h2>Subspace: ${sub.steps.length} orthogonal direction(s)</h2>` +
    `<p>Requested rank: ${escapeHtml(String(sub.requested))}. Stopped: ${escapeHtml(sub.stopped)}.</p>` +
    `<figure>${left}<figcaption>Behaviour left on the validation ${escapeHtml(positiveLabel)} prompts with the first k directions removed together.</figcaption></figure>` +
    `<figure>${induced}<figcaption>What each direction alone induces when added to the ${escapeHtml(negativeLabel)} prompts at its own layer (the orthogonal-steering check); dashed: their unedited rate.</figcaption></figure>` +
    `<table><thead><tr><th>direction</th><th>layer</th><th>‖mean difference‖</th><th>behaviour left (1..k removed)</th><th>${escapeHtml(negativeLabel)} unchanged</th><th>KL</th><th>induced alone</th></tr></thead><tbody>${rows}</tbody></table>` +
    `<table><thead><tr><th>cos</th>${sub.steps.map((_, i) => `<th>r${i + 1}</th>`).join("")}</tr></thead><tbody>${cos}</tbody></table>`
  );
}

function signatureSection(report: PipelineReport): string {
  const sig = report.signature;
  const { positiveLabel, negativeLabel } = report.prompts;
  const rows = sig.sequences.map(
    (s) =>
      `<tr><td><code>${escapeHtml(JSON.stringify(s.text))}</code></td><td>${s.tokens.length}</td><td>${s.positive}</td><td>${s.negative}</td><td>${s.byPrior ? "kept by the phrase prior" : ""}</td></tr>`,
  );
  const samples = (label: string, texts: string[]) => texts.map((t) => `<tr><td>${escapeHtml(label)}</td><td><pre>${escapeHtml(t)}</pre></td></tr>`).join("");
  return (
    `<p>Learned from the unedited model's own ${sig.method === "generation" ? `greedy ${sig.tokens}-token completions` : "first tokens"} of the train prompts ` +
    `(${sig.completions.positive} ${escapeHtml(positiveLabel)}, ${sig.completions.negative} ${escapeHtml(negativeLabel)}; the two sides were defined by ${escapeHtml(sig.labelledBy)}). ` +
    `The openings below start <b>${pct(sig.coverage)}</b> of the ${escapeHtml(positiveLabel)} completions and ${pct(sig.leak)} of the ${escapeHtml(negativeLabel)} ones ` +
    `(separability ${fmt(sig.separability, 2)}).${sig.preamble.length ? ` Every completion starts with the same ${sig.preamble.length} token(s), kept in front of each opening.` : ""}` +
    `${sig.priorPhrasesSeen.length ? ` Phrases of the prior the model produced: ${sig.priorPhrasesSeen.map((p) => `<code>${escapeHtml(p)}</code>`).join(", ")}.` : ""}</p>` +
    `<table><thead><tr><th>opening</th><th>tokens</th><th>${escapeHtml(positiveLabel)} completions</th><th>${escapeHtml(negativeLabel)} completions</th><th></th></tr></thead><tbody>${rows.join("")}</tbody></table>` +
    `<table class="samples"><thead><tr><th>set</th><th>completion (train, unedited)</th></tr></thead><tbody>${samples(positiveLabel, sig.samples.positive)}${samples(negativeLabel, sig.samples.negative)}</tbody></table>`
  );
}

function samplesTable(report: PipelineReport): string {
  const samples = report.evaluation?.samples ?? [];
  if (samples.length === 0) return "<p>No completions (generation was not run).</p>";
  const [yes, no] = report.refusal ? ["refused", "answered"] : ["behaviour", "other"];
  const mark = (shows: boolean) => (shows ? `<span class="shows">${yes}</span>` : `<span class="other">${no}</span>`);
  const label = (kind: "positive" | "negative") => (kind === "positive" ? report.prompts.positiveLabel : report.prompts.negativeLabel);
  const rows = samples.map(
    (s) =>
      `<tr><td>${escapeHtml(label(s.kind))}</td><td>${escapeHtml(s.prompt)}</td><td>${mark(s.behaviourBefore)}<pre>${escapeHtml(s.before)}</pre></td><td>${mark(s.behaviourAfter)}<pre>${escapeHtml(s.after)}</pre></td></tr>`,
  );
  return `<table class="samples"><thead><tr><th>set</th><th>prompt</th><th>before</th><th>after</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

export function renderReportHtml(report: PipelineReport): string {
  const { model, prompts, evaluation, selection, geometry } = report;
  const title = `abliterate report: ${model.source}`;
  const scores = report.scores;
  const layerCount = geometry.norms.length;
  const byLayer = (pick: (c: NonNullable<typeof scores>["candidates"][number]) => number | null) =>
    Array.from({ length: layerCount }, (_, i) => {
      const c = scores?.candidates.find((candidate) => candidate.layer === i);
      return c ? pick(c) : null;
    });
  const summary: string[] = [];
  summary.push(`<li>Model <code>${escapeHtml(model.source)}</code> (${escapeHtml(model.modelType)}, ${model.numLayers} layers, hidden size ${model.hiddenSize}${model.revision ? `, revision ${escapeHtml(model.revision)}` : ""}).</li>`);
  summary.push(
    `<li>Contrast: ${escapeHtml(prompts.positiveLabel)} (${escapeHtml(prompts.positiveOrigin)}) vs ${escapeHtml(prompts.negativeLabel)} (${escapeHtml(prompts.negativeOrigin)}); ` +
      `train/validation/test ${prompts.positive.train}/${prompts.positive.validation}/${prompts.positive.test} and ${prompts.negative.train}/${prompts.negative.validation}/${prompts.negative.test}, seed ${prompts.seed}, chat template ${prompts.chatTemplate ? "applied" : "not applied"}${prompts.systemPrompt ? `, system prompt “${escapeHtml(prompts.systemPrompt)}”` : ""}.</li>`,
  );
  if (report.search) summary.push(`<li>Chosen edit: search trial #${report.search.chosen.number} of ${report.search.trials.length} (${escapeHtml(report.search.chosen.note)}); the single-layer rule picked layer index ${selection.layer}.</li>`);
  else summary.push(`<li>Chosen direction: layer index ${selection.layer} (${selection.how === "automatic" ? "lowest behaviour score among the candidates that passed the damage filters" : "given with --direction-layer"}).</li>`);
  if (report.surgery) {
    summary.push(
      `<li>Surgery: ${report.surgery.tensorsChanged} tensors edited (α = ${report.surgery.scale}, layers ${escapeHtml(report.surgery.layers)}), verification ${report.surgery.verified ? "passed" : "FAILED"} (max ${fmt(report.surgery.maxUlpError)} ulp); written to <code>${escapeHtml(report.surgery.out)}</code>.</li>`,
    );
  }
  const labels = { positive: prompts.positiveLabel, negative: prompts.negativeLabel };
  const warning = evaluation ? damageWarning(evaluation, labels) : undefined;
  if (evaluation) summary.push(`<li><b>${escapeHtml(describeEvaluation(evaluation, labels, report.refusal))}</b>.</li>`);
  const notes = [...(warning ? [warning] : []), ...selection.notes, ...(evaluation?.note ? [evaluation.note] : []), ...report.notes];
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:980px;margin:24px auto;padding:0 16px;color:#222;line-height:1.45}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.88em;width:100%}td,th{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
tr.chosen{background:#fff3c4;font-weight:600}pre{white-space:pre-wrap;margin:2px 0;font-size:.95em}
.tick{font-size:10px;fill:#444}.axis{font-size:11px;fill:#222}.shows{color:#b22}.other{color:#282}
.note{background:#f4f4f4;padding:6px 10px;border-left:3px solid #c60}figure{margin:0}figcaption{font-size:.85em;color:#555}
</style></head><body>
<h1>${escapeHtml(title)}</h1>
<p>abliterate ${escapeHtml(report.tool.version)}, ${escapeHtml(report.created)}</p>
<ul>${summary.join("\n")}</ul>
${notes.map((note) => `<p class="note">${escapeHtml(note)}</p>`).join("\n")}
${evaluation ? `<h2>Before and after</h2><figure>${rateBars(report)}<figcaption>Share of the held-out test completions that start with the learned signature (${evaluation.method === "generation" ? `greedy ${evaluation.maxNewTokens}-token completions` : "first tokens only"}), and of the ${escapeHtml(prompts.negativeLabel)} completions left identical over their first ${evaluation.unchangedTokens} tokens.</figcaption></figure>` : ""}
<h2>The behaviour's signature</h2>
${signatureSection(report)}
<h2>Where the contrast lives</h2>
<figure>${lineChart({
    series: [
      { name: `${prompts.positiveLabel} mean`, color: "#c33", values: geometry.positiveProjection },
      { name: `${prompts.negativeLabel} mean`, color: "#36c", values: geometry.negativeProjection },
    ],
    chosen: selection.layer,
    yLabel: "projection on the layer's direction",
    zeroLine: true,
  })}<figcaption>Per-layer separation: the two means projected on each layer's unit direction. The gap is the direction's norm.</figcaption></figure>
<figure>${heatmap(report)}<figcaption>Cosine similarity between the per-layer directions (red +1, white 0, blue −1); the chosen layer's row is outlined.</figcaption></figure>
${scores ? `<h2>Candidates</h2>
<figure>${lineChart({
    series: [
      { name: `${prompts.positiveLabel} behaviour (ablated)`, color: "#c33", values: byLayer((c) => c.behaviour) },
      { name: `induced on ${prompts.negativeLabel} (added)`, color: "#93c", values: byLayer((c) => c.induced) },
    ],
    chosen: selection.layer,
    yLabel: "signature probability",
  })}<figcaption>Probability of the learned signature on the validation prompts. Baseline (no edit): ${escapeHtml(prompts.positiveLabel)} ${fmt(scores.baseline.positiveBehaviour)}, ${escapeHtml(prompts.negativeLabel)} ${fmt(scores.baseline.negativeBehaviour)}.</figcaption></figure>
<figure>${lineChart({
    series: [
      { name: `${prompts.negativeLabel} unchanged (ablated)`, color: "#36c", values: byLayer((c) => c.unchanged) },
      { name: `KL on ${prompts.negativeLabel} (ablated)`, color: "#2a7", values: byLayer((c) => c.kl) },
    ],
    chosen: selection.layer,
    yLabel: "share unchanged / KL",
  })}<figcaption>Damage to the ${escapeHtml(prompts.negativeLabel)} set: the share of its completions left identical over ${scores.settings.unchangedTokens} tokens, and the mean KL over ${scores.settings.klTokens} tokens.</figcaption></figure>
${candidatesTable(report)}` : ""}
${searchSection(report)}
${subspaceSection(report)}
${evaluation ? `<h2>Sample completions</h2>${samplesTable(report)}` : ""}
</body></html>
`;
}
