// tunelab studio pages: plain fetch() over the same /v1 API the openai client uses.
// The browser's cookie (set by /login) authenticates; the page state lives in the URL hash,
// so a reload comes back to the same page and job.
"use strict";
const $ = (sel, root = document) => root.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));

async function api(path, options = {}) {
  const res = await fetch(path, options);
  const body = res.headers.get("content-type")?.includes("json") ? await res.json() : await res.text();
  if (!res.ok) throw new Error(body?.error?.message || res.statusText);
  return body;
}

// ---- navigation ----
function route() {
  const [page, id] = (location.hash.slice(1) || "data").split("/");
  document.querySelectorAll("section").forEach((s) => s.classList.toggle("active", s.id === "page-" + page));
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === page));
  ({ data: loadFiles, new: loadNewJob, jobs: () => loadJobs(id), evaluate: () => loadEvaluate(id), compare: loadCompare,
     playground: loadPlayground }[page] || loadFiles)();
}
window.addEventListener("hashchange", route);

// ---- Data ----
async function loadFiles() {
  const files = (await api("/v1/files")).data;
  $("#files tbody").innerHTML = files.map((f) => `<tr data-id="${f.id}"><td>${esc(f.filename)}</td><td>${f.id}</td><td>${f.status}</td><td>${f.bytes}</td></tr>`).join("");
  $("#files tbody").querySelectorAll("tr").forEach((tr) => tr.addEventListener("click", () => showFile(tr.dataset.id)));
  return files;
}

async function showFile(id) {
  const { status, report } = await api(`/v1/files/${id}/report`);
  if (!report && status === "processed") {  // a file the studio made (an evaluation's result)
    $("#file-detail").innerHTML = `<h3>${esc(id)}</h3><p><a href="/v1/files/${id}/content" download>download</a></p>`;
    return;
  }
  if (!report) { $("#file-detail").innerHTML = `<p>${status}: validating…</p>`; setTimeout(() => showFile(id), 500); return; }
  const cell = $(`#files tr[data-id="${id}"] td:nth-child(3)`);
  if (cell) cell.textContent = status;  // the list was drawn before validation finished
  const s = report.stats || {};
  let html = `<h3>${esc(id)}: ${status}</h3><p>${esc(report.format || "")}: read ${report.read} = kept ${report.kept} + rejected ${report.rejected}` +
    (report.good !== undefined ? ` (good ${report.good}, bad ${report.bad})` : "") +
    (report.rules ? ` (rules: ${esc(report.rules.join(", "))})` : "") + "</p>";
  if (report.errors.length) html += `<h4>Rejected rows</h4><pre class="error">${esc(report.errors.join("\n"))}</pre>`;
  if (s.examples) {
    html += `<table><tr><th></th><th>mean</th><th>median</th><th>min</th><th>max</th></tr>` +
      ["tokens", "target_tokens"].map((k) => `<tr><td>${k.replace("_", " ")}</td><td>${s[k].mean}</td><td>${s[k].median}</td><td>${s[k].min}</td><td>${s[k].max}</td></tr>`).join("") +
      `</table><p>training tokens per epoch: ${s.tokens_per_epoch} (targets ${s.target_tokens_per_epoch}, ${Math.round(100 * s.target_share)}%)</p>`;
    const ex = (await api(`/v1/files/${id}/inspect?n=1`)).examples[0];
    if (ex) {
      html += `<h4>Example ${esc(ex.id)} as the model sees it: <span class="mask"><span class="t">highlighted</span></span> tokens carry loss</h4><div class="mask" id="mask">` +
        ex.pieces.map(([piece, target]) => `<span class="${target ? "t" : "c"}">${esc(piece)}</span>`).join("") + "</div>";
    }
  }
  $("#file-detail").innerHTML = html;
}

$("#upload-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const file = $("#upload-file").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("purpose", "fine-tune");
  form.append("file", file);
  $("#upload-status").textContent = "uploading…";
  try {
    const f = await api("/v1/files", { method: "POST", body: form });
    $("#upload-status").textContent = `uploaded ${f.id}`;
    await loadFiles();
    showFile(f.id);
  } catch (err) { $("#upload-status").textContent = err.message; }
});

// ---- New job ----
async function modelNames() { return (await api("/v1/models")).data.map((m) => m.id); }

async function loadNewJob() {
  const [models, files] = [await modelNames(), (await api("/v1/files?purpose=fine-tune")).data.filter((f) => f.status === "processed")];
  $("#job-model").innerHTML = models.filter((m) => !m.includes(":ckpt-")).map((m) => `<option>${esc(m)}</option>`).join("");
  const yaml = (f) => /\.ya?ml$/i.test(f.filename);  // prompt files; the rest are data
  document.querySelectorAll(".file-select").forEach((sel) => {
    const prompts = sel.classList.contains("prompt-select");
    const none = prompts ? "none" : "none (10% of training held out)";
    sel.innerHTML = (sel.classList.contains("optional") ? `<option value=''>${none}</option>` : "") +
      files.filter((f) => yaml(f) === prompts).map((f) => `<option value="${f.id}">${esc(f.filename)} (${f.id})</option>`).join("");
  });
}

$("#job-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const v = Object.fromEntries(new FormData(e.target));
  const num = (x) => (x.trim() === "" ? "auto" : Number(x));
  const config = { model: { adapter: v.adapter }, train: {} };
  if (v.max_steps.trim()) config.train.max_steps = Number(v.max_steps);
  if (v.method === "bake" && !v.prompt_file) { $("#job-status").textContent = "bake needs a prompt file (upload a prompt YAML on the Data page)"; return; }
  const hp = { n_epochs: num(v.n_epochs), batch_size: num(v.batch_size), learning_rate_multiplier: num(v.learning_rate_multiplier) };
  // OpenAI's method object; bake is tunelab's extension (supervised + a prompt file).
  const method = v.method === "dpo" ? { type: "dpo", dpo: { hyperparameters: { ...hp, beta: num(v.beta) } } }
    : { type: "supervised", supervised: { hyperparameters: hp } };
  const body = {
    model: v.model, training_file: v.training_file, validation_file: v.validation_file || null, suffix: v.suffix || null, method,
    tunelab: { config: v.yaml.trim() ? v.yaml : config, accelerate_config: v.accelerate_config.trim() || null,
               prompt_file: v.method === "bake" ? v.prompt_file || null : null,
               best_metric: v.best_metric },
  };
  if (v.behaviour_eval) {  // train.behaviour_eval: the server says which field is wrong (no validation data, ...)
    const every = v.eval_steps.trim(), contexts = v.behaviour_contexts.trim();
    body.tunelab.behaviour_eval = { ...(contexts && { contexts: Number(contexts) }), ...(every && { eval_steps: Number(every) }) };
  }
  try {
    const job = await api("/v1/fine_tuning/jobs", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    location.hash = "jobs/" + job.id;
  } catch (err) { $("#job-status").textContent = err.message; }
});

// ---- Jobs: list, live status, live curve over SSE ----
let stream = null, points = { train: [], val: [], behaviour: {} };

// One job's state, drawn the same in the table and the panel: the server's status_text is the
// single source (so the two can never disagree, e.g. validating_files in one and running in the other).
const stateCells = (j) => `<td class="job-state"><span class="badge ${j.status}">${j.status}</span> ${esc(j.tunelab.status_text)}</td>`;

async function loadJobs(selected) {
  const jobs = (await api("/v1/fine_tuning/jobs?limit=100")).data;
  $("#jobs tbody").innerHTML = jobs.map((j) => `<tr data-id="${j.id}" class="${j.id === selected ? "selected" : ""}"><td>${j.id}</td><td>${esc(j.model)}</td>` +
    `${stateCells(j)}<td>${esc(j.fine_tuned_model || "")}</td></tr>`).join("");
  $("#jobs tbody").querySelectorAll("tr").forEach((tr) => tr.addEventListener("click", () => { location.hash = "jobs/" + tr.dataset.id; }));
  if (selected) openJob(selected);
}

async function refreshJob(id) {
  const job = await api(`/v1/fine_tuning/jobs/${id}`);
  $("#job-title").textContent = `${job.id}  (${job.model})`;
  $("#job-state").textContent = job.status;
  $("#job-state").className = "badge " + job.status;
  const eta = job.estimated_finish ? `, about ${Math.max(0, Math.round(job.estimated_finish - Date.now() / 1000))} s left` : "";
  $("#job-progress").textContent = job.tunelab.status_text + eta + (job.fine_tuned_model ? ` → ${job.fine_tuned_model}` : "");
  const row = $(`#jobs tr[data-id="${job.id}"] td.job-state`);
  if (row) row.outerHTML = stateCells(job);
  $("#job-error").textContent = job.error ? `${job.error.code}: ${job.error.message}` : "";
  const done = ["succeeded", "failed", "cancelled"].includes(job.status);
  $("#job-cancel").hidden = done;
  $("#job-metrics").hidden = !done;
  $("#job-metrics").href = `/v1/fine_tuning/jobs/${job.id}/metrics`;
  $("#job-evaluate").hidden = job.status !== "succeeded";
  $("#job-evaluate").href = `#evaluate/${job.id}`;
  $("#job-results").innerHTML = job.result_files.map((f) => `<a href="/v1/files/${f}/content" download>${f}</a>`).join(" ");
  return job;
}

function openJob(id) {
  $("#job-detail").hidden = false;
  if (stream && stream.jobId === id) return;
  if (stream) stream.close();
  points = { train: [], val: [], behaviour: {} };
  $("#events").innerHTML = "";
  drawCurve();
  drawBehaviour();
  refreshJob(id);
  // EventSource reconnects by itself after a dropped connection and sends Last-Event-ID, so the
  // server replays only what was missed; a page reload starts at 0 and replays everything.
  stream = new EventSource(`/v1/fine_tuning/jobs/${id}/stream`);
  stream.jobId = id;
  stream.addEventListener("job_event", (msg) => {
    const ev = JSON.parse(msg.data);
    $("#events").insertAdjacentHTML("beforeend", `<li>${new Date(ev.created_at * 1000).toLocaleTimeString()} ${esc(ev.message)}</li>`);
    $("#events").scrollTop = $("#events").scrollHeight;
    if (ev.type === "metrics") {
      const d = ev.data, rates = Object.keys(d).filter((k) => k.startsWith("behaviour_"));
      rates.forEach((k) => (points.behaviour[k] ||= []).push([d.step, d[k]]));
      if (rates.length) drawBehaviour();
      else if (d.valid_loss != null) points.val.push([d.step, d.valid_loss]);
      else if (d.train_loss != null) points.train.push([d.step, d.train_loss]);
      if (!rates.length) drawCurve();
    }
    refreshJob(id);
  });
  stream.addEventListener("end", () => { stream.close(); refreshJob(id); loadJobs(); });
}

// One SVG line chart for the loss and the behaviour rates: `series` is [[label, color, points]],
// `range` fixes the y axis (rates: 0..1), `fmt` writes its labels.
function drawChart(svg, series, { range = null, fmt = (y) => y.toFixed(3), empty = "waiting for the first logged step…" } = {}) {
  const all = series.flatMap(([, , pts]) => pts);
  svg.dataset.points = String(all.length);
  if (!all.length) { svg.innerHTML = `<text x="280" y="130" text-anchor="middle">${esc(empty)}</text>`; return; }
  const [W, H, L, B, T, R] = [560, 260, 50, 30, 10, 10];
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs, Math.min(...xs) + 1)];
  const pad = (Math.max(...ys) - Math.min(...ys)) * 0.08 || 0.1;
  const [y0, y1] = range || [Math.max(0, Math.min(...ys) - pad), Math.max(...ys) + pad];
  const px = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R), py = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  let out = `<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="#fff" stroke="#999"/>`;
  for (let i = 0; i < 5; i++) {
    const y = y0 + ((y1 - y0) * i) / 4;
    out += `<line x1="${L}" x2="${W - R}" y1="${py(y)}" y2="${py(y)}" stroke="#eee"/><text x="${L - 4}" y="${py(y) + 4}" text-anchor="end">${fmt(y)}</text>`;
  }
  out += `<text x="${L}" y="${H - 8}">step ${x0}</text><text x="${W - R}" y="${H - 8}" text-anchor="end">${x1}</text>`;
  series.filter(([, , pts]) => pts.length).forEach(([label, color, pts], i) => {
    out += `<polyline fill="none" stroke="${color}" stroke-width="1.8" points="${pts.map(([x, y]) => `${px(x)},${py(y)}`).join(" ")}"/>`;
    out += pts.map(([x, y]) => `<circle cx="${px(x)}" cy="${py(y)}" r="2.5" fill="${color}"><title>${esc(label)} step ${x}: ${fmt(y)}</title></circle>`).join("");
    out += `<text x="${W - R - 150}" y="${T + 16 + 14 * i}" style="fill: ${color}">— ${esc(label)}</text>`;
  });
  svg.innerHTML = out;
}

function drawCurve() {
  drawChart($("#curve"), [["train loss", "#1f77b4", points.train], ["val loss", "#d62728", points.val]]);
}

// train.behaviour_eval's rates (behaviour_appropriate, behaviour_correct, ...), one line each;
// the chart shows only for a job that measures them.
const RATE_COLORS = ["#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#e377c2"];
function drawBehaviour() {
  const names = Object.keys(points.behaviour).sort();
  $("#behaviour").hidden = !names.length;
  drawChart($("#behaviour-curve"), names.map((n, i) => [n.replace("behaviour_", "").replace("_", " "), RATE_COLORS[i % RATE_COLORS.length], points.behaviour[n]]),
    { range: [0, 1], fmt: (y) => `${Math.round(100 * y)}%` });
}

$("#job-cancel").addEventListener("click", async () => {
  const id = location.hash.split("/")[1];
  try { await api(`/v1/fine_tuning/jobs/${id}/cancel`, { method: "POST" }); } catch (err) { $("#job-error").textContent = err.message; }
  refreshJob(id);
});

// ---- Evaluate: a held-out file through the behaviour judge, base beside tuned ----
let evalTimer = null;
const FINISHED = ["succeeded", "failed", "cancelled"];

async function loadEvaluate(id) {
  const [files, jobs, models] = await Promise.all([api("/v1/files?purpose=fine-tune"), api("/v1/fine_tuning/jobs?limit=100"), modelNames()]);
  $("#eval-file").innerHTML = files.data.filter((f) => f.status === "processed" && !/\.ya?ml$/i.test(f.filename))
    .map((f) => `<option value="${f.id}">${esc(f.filename)} (${f.id})</option>`).join("");
  $("#eval-job").innerHTML = "<option value=''>none: the models below</option>" + jobs.data.filter((j) => j.status === "succeeded")
    .map((j) => `<option value="${j.id}">${j.id} → ${esc(j.fine_tuned_model)}</option>`).join("");
  const options = models.map((m) => `<option>${esc(m)}</option>`).join("");
  $("#eval-a").innerHTML = options;
  $("#eval-b").innerHTML = "<option value=''>(nothing)</option>" + options;
  if (id && id.startsWith("ftjob-")) $("#eval-job").value = id;
  await listEvaluations(id && id.startsWith("eval-") ? id : null);
}

const evalState = (e) => `<span class="badge ${e.status}">${e.status}</span> ${e.status_text === e.status ? "" : esc(e.status_text)}`;

async function listEvaluations(selected) {
  const evals = (await api("/v1/studio/evaluations")).data;
  $("#evals tbody").innerHTML = evals.map((e) => `<tr data-id="${e.id}" class="${e.id === selected ? "selected" : ""}"><td>${e.id}</td>` +
    `<td>${e.models.map((m) => `${m.label}: ${esc(m.model)}`).join("<br>")}</td><td>${esc(e.file.filename)}</td>` +
    `<td class="eval-state">${evalState(e)}</td></tr>`).join("");
  $("#evals tbody").querySelectorAll("tr").forEach((tr) => tr.addEventListener("click", () => { location.hash = "evaluate/" + tr.dataset.id; }));
  if (selected) showEvaluation(selected);
  else $("#eval-detail").hidden = true;
}

$("#eval-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const v = Object.fromEntries(new FormData(e.target));
  const body = { file: v.file, turns: v.turns };
  if (v.job) body.fine_tuning_job_id = v.job;
  else body.models = [v.model_a, v.model_b].filter(Boolean);
  if (v.limit.trim()) body.limit = Number(v.limit);
  if (v.max_new_tokens.trim()) body.max_new_tokens = Number(v.max_new_tokens);
  try {
    const ev = await api("/v1/studio/evaluations", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    $("#eval-status").textContent = "";
    location.hash = "evaluate/" + ev.id;
  } catch (err) { $("#eval-status").textContent = err.message; }
});

async function showEvaluation(id) {
  clearTimeout(evalTimer);
  const ev = await api(`/v1/studio/evaluations/${id}`);
  $("#eval-detail").hidden = false;
  $("#eval-title").textContent = `${ev.id}: ${ev.models.map((m) => m.model).join(" beside ")} on ${ev.file.filename}`;
  $("#eval-state").textContent = ev.status;
  $("#eval-state").className = "badge " + ev.status;
  $("#eval-progress").textContent = ev.status_text === ev.status ? "" : ev.status_text;
  $("#eval-error").textContent = ev.error ? `${ev.error.code}: ${ev.error.message}` : "";
  const cell = $(`#evals tr[data-id="${ev.id}"] td.eval-state`);
  if (cell) cell.innerHTML = evalState(ev);
  $("#eval-download").hidden = !ev.result_file;
  if (ev.result_file) $("#eval-download").href = `/v1/files/${ev.result_file}/content`;
  if (!FINISHED.includes(ev.status)) {
    ["#eval-rates", "#eval-confusion"].forEach((s) => { $(s).innerHTML = ""; });
    $("#eval-browser").hidden = true;
    evalTimer = setTimeout(() => { if (location.hash === "#evaluate/" + id) showEvaluation(id); }, 1000);
    return;
  }
  if (ev.result) drawEvaluation(ev.result);
}

const pct = (x) => (100 * x).toFixed(1);
// A rate with its 95% interval; data-rate carries the judge's exact value (what tests compare).
const rateCell = (r, what, side) => `<td class="rate ${what}" data-side="${side}" data-rate="${r ? r.rate ?? "" : ""}">` +
  (r && r.rate != null ? `${pct(r.rate)}% <span class="ci">[${pct(r.ci95[0])}, ${pct(r.ci95[1])}] ${r.k}/${r.n}</span>` : "–") + "</td>";

function drawEvaluation(res) {
  const sides = res.models;
  const acts = [...new Set(sides.flatMap((s) => Object.keys(s.per_act)))];
  const head = `<tr><th>reference act</th><th>n</th>${sides.map((s) => `<th>${esc(s.label)}: appropriate act</th><th>${esc(s.label)}: correct</th>`).join("")}</tr>`;
  const row = (act, n, get) => `<tr data-act="${act}"><td>${act}</td><td>${n}</td>` +
    sides.map((s, i) => rateCell(get(s)?.appropriateness, "appropriateness", i) + rateCell(get(s)?.correctness, "correctness", i)).join("") + "</tr>";
  $("#eval-rates").innerHTML = `<table class="rates"><thead>${head}</thead><tbody>` + row("overall", sides[0].n, (s) => s) +
    acts.map((a) => row(a, sides[0].per_act[a]?.n ?? 0, (s) => s.per_act[a])).join("") + "</tbody></table>" +
    `<p class="muted">${sides.map((s) => `${esc(s.label)} = ${esc(s.model)}`).join("; ")}. Judge: ${esc(res.judge)}.</p>`;
  $("#eval-confusion").innerHTML = sides.map((s) => {
    const { labels, matrix } = s.confusion;
    const used = labels.filter((_, i) => matrix[i].some(Boolean) || matrix.some((r) => r[i]));
    const idx = used.map((l) => labels.indexOf(l));
    return `<div><h4>${esc(s.label)}: reference act (rows) → act of the reply (columns)</h4><table class="confusion" data-side="${esc(s.label)}">` +
      `<tr><th></th>${used.map((l) => `<th>${l}</th>`).join("")}</tr>` +
      idx.map((i) => `<tr><th>${labels[i]}</th>${idx.map((j) => `<td class="${matrix[i][j] ? (i === j ? "hit" : "miss") : ""}">${matrix[i][j]}</td>`).join("")}</tr>`).join("") +
      "</table></div>";
  }).join("");
  drawVerdicts(res);
}

function verdictCell(r) {
  const mark = r.appropriate && r.correct ? ["right", "right"] : r.appropriate ? ["wrong", "right act, wrong content"] : ["wrong", "wrong act"];
  const reason = Object.entries(r.reason).filter(([, v]) => v !== null && !(Array.isArray(v) && !v.length))
    .map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`).join("; ");
  return `<td>${esc(r.prediction)}</td><td><span class="verdict ${mark[0]}">${r.act}: ${mark[1]}</span>` +
    (reason ? `<br><span class="muted">${esc(reason)}</span>` : "") + "</td>";
}

function drawVerdicts(res) {
  const differ = $("#eval-differ").checked;
  const key = (r) => `${r.act}/${r.appropriate}/${r.correct}`;
  const rows = res.verdicts.filter((v) => !differ || new Set(v.replies.map(key)).size > 1);
  $("#eval-browser").hidden = false;
  $("#eval-verdicts").innerHTML = `<thead><tr><th>#</th><th>user</th><th>reference</th>` +
    res.models.map((s) => `<th>${esc(s.label)}: reply</th><th>${esc(s.label)}: verdict</th>`).join("") + "</tr></thead><tbody>" +
    rows.map((v) => `<tr data-index="${v.index}"><td>${v.index + 1}</td><td>${esc(v.user)}</td><td>${esc(v.reference)}<br><span class="muted">${v.reference_act}</span></td>` +
      v.replies.map(verdictCell).join("") + "</tr>").join("") + "</tbody>";
  $("#eval-verdicts").dataset.shown = String(rows.length);
  $("#eval-verdicts").dataset.result = res.evaluation_id;
}

$("#eval-differ").addEventListener("change", async () => {
  const id = location.hash.split("/")[1];
  const ev = await api(`/v1/studio/evaluations/${id}`);
  if (ev.result) drawVerdicts(ev.result);
});

// ---- Compare ----
async function loadCompare() {
  const jobs = (await api("/v1/fine_tuning/jobs?limit=100")).data;
  $("#compare-picks").innerHTML = jobs.map((j) => `<label><input type="checkbox" value="${j.id}"> ${j.id} ${esc(j.fine_tuned_model || j.status)}</label><br>`).join("");
}

$("#compare-go").addEventListener("click", async () => {
  const ids = [...document.querySelectorAll("#compare-picks input:checked")].map((c) => c.value);
  if (ids.length < 2) { $("#compare-out").textContent = "tick at least two jobs"; return; }
  const res = await api(`/v1/studio/compare?ids=${ids.join(",")}`);
  const head = `<tr><th></th>${ids.map((i) => `<th>${i.slice(-8)}</th>`).join("")}</tr>`;
  const rows = (obj) => Object.entries(obj).map(([k, per]) => `<tr><td>${esc(k)}</td>${ids.map((i) => `<td>${esc(JSON.stringify(per[i]))}</td>`).join("")}</tr>`).join("");
  const scoreKeys = [...new Set(ids.flatMap((i) => Object.keys(res.scores[i])))];
  const scores = Object.fromEntries(scoreKeys.map((k) => [k, Object.fromEntries(ids.map((i) => [i, res.scores[i][k]]))]));
  $("#compare-out").innerHTML = res.chart + `<h4>Config differences</h4><table>${head}${rows(res.config_diff) || "<tr><td>none</td></tr>"}</table>` +
    `<h4>Scores</h4><table>${head}${rows(scores)}</table>`;
});

// ---- Playground ----
async function loadPlayground() {
  const models = await modelNames();
  const options = models.map((m) => `<option>${esc(m)}</option>`).join("");
  $("#pg-model").innerHTML = options;
  $("#pg-base").innerHTML = "<option value=''>(nothing)</option>" + options;
  const ft = models.filter((m) => m.startsWith("ft:") && !m.includes(":ckpt-"));
  if (ft.length) $("#pg-model").value = ft[ft.length - 1];
  $("#pg-base").value = models.find((m) => !m.startsWith("ft:")) || "";
}

async function ask(model, target, label) {
  $(label).textContent = model;
  $(target).textContent = "…";
  try {
    const res = await api("/v1/chat/completions", { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: $("#pg-prompt").value }], max_tokens: 64 }) });
    $(target).textContent = res.choices[0].message.content;
  } catch (err) { $(target).textContent = "error: " + err.message; }
}

$("#pg-send").addEventListener("click", () => {
  ask($("#pg-model").value, "#pg-a", "#pg-a-name");
  if ($("#pg-base").value) ask($("#pg-base").value, "#pg-b", "#pg-b-name");
});

route();
