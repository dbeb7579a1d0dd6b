// The gateway's page: chat with the braid (streamed), each answer's decision trace, ratings that update the
// meta-braider, and a dashboard of sweep records and decisions. Hand-written, no dependencies: every request
// goes to this page's own origin (the Content-Security-Policy says so too).
"use strict";

const KEY = "braid-api-key"; // sessionStorage: this tab only, never the URL
const $ = (id) => document.getElementById(id);
const state = { conversation: null, controller: null, started: false };

// -- talking to the gateway ---------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function headers(extra = {}) {
  const key = sessionStorage.getItem(KEY);
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(options.headers) });
  if (!response.ok) throw await apiError(response);
  return response.json();
}

async function apiError(response) {
  let message = `${response.status} ${response.statusText}`;
  try { message = (await response.json()).error.message || message; } catch (_) { /* not JSON */ }
  if (response.status === 401) {
    showLogin(sessionStorage.getItem(KEY) ? `The server refused the key: ${message}` : null);
  }
  return new ApiError(response.status, message);
}

function showError(id, error) {
  const el = $(id);
  el.textContent = error ? String(error.message || error) : "";
  el.hidden = !error;
}

// -- login --------------------------------------------------------------------------------------------------
function showLogin(message) {
  sessionStorage.removeItem(KEY);
  for (const id of ["chat", "dashboard"]) $(id).hidden = true;
  $("login").hidden = false;
  $("logout").hidden = true;
  showError("login-error", message || null);
  $("key").focus();
}

async function enter() {
  let models;
  try {
    models = await api("/v1/models");
  } catch (e) {
    if (e.status !== 401) showLogin(`Cannot reach the server: ${e.message}`);
    return;
  }
  $("login").hidden = true;
  $("logout").hidden = !sessionStorage.getItem(KEY);
  fillModels(models.data.map((m) => m.id));
  show("chat");
  if (!state.started) {
    state.started = true;
    await loadConversations();
  }
}

function fillModels(ids) {
  const select = $("model");
  select.replaceChildren();
  for (const id of ids) select.append(new Option(id === "auto" ? "auto (the meta-braider decides)" : id, id));
}

// -- views --------------------------------------------------------------------------------------------------
function show(view) {
  for (const name of ["chat", "dashboard"]) {
    $(name).hidden = name !== view;
    $(`tab-${name}`).setAttribute("aria-pressed", String(name === view));
  }
  if (view === "dashboard") loadDashboard();
}

// -- conversations ------------------------------------------------------------------------------------------
async function loadConversations() {
  try {
    const list = await api("/v1/conversations?limit=50");
    const ul = $("conversation-list");
    ul.replaceChildren();
    for (const c of list) {
      const button = el("button", { type: "button", "data-id": c.id }, c.title || c.id);
      button.addEventListener("click", () => openConversation(c.id));
      if (c.id === state.conversation) button.setAttribute("aria-current", "true");
      ul.append(el("li", {}, button));
    }
  } catch (e) {
    showError("chat-error", e);
  }
}

async function openConversation(id) {
  state.conversation = id;
  $("messages").replaceChildren();
  try {
    const messages = await api(`/v1/conversations/${encodeURIComponent(id)}/messages?limit=200`);
    for (const m of messages) addMessage(m.role, m.content);
  } catch (e) {
    showError("chat-error", e);
  }
  await loadConversations();
}

async function newConversation(title = null) {
  const c = await api("/v1/conversations", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ title }),
  });
  state.conversation = c.id;
  $("messages").replaceChildren();
  await loadConversations();
  return c.id;
}

// -- chat ---------------------------------------------------------------------------------------------------
function addMessage(role, text) {
  const li = $("message-template").content.firstElementChild.cloneNode(true);
  li.classList.add(role);
  li.querySelector(".role").textContent = role === "assistant" ? "braid" : role;
  li.querySelector(".text").textContent = text;
  $("messages").append(li);
  return li;
}

function constraints() {
  const out = {};
  for (const name of ["compute_budget", "latency_requirement", "accuracy_target"]) {
    const value = $(name).value.trim();
    if (value !== "") out[name] = Number(value);
  }
  return Object.keys(out).length ? out : null;
}

async function send(event) {
  event.preventDefault();
  const prompt = $("prompt").value.trim();
  if (!prompt || state.controller) return;
  showError("chat-error", null);
  try {
    if (!state.conversation) await newConversation(prompt.slice(0, 60));
  } catch (e) {
    showError("chat-error", e);
    return;
  }
  $("prompt").value = "";
  addMessage("user", prompt);
  const answer = addMessage("assistant", "");
  const limits = constraints();
  const body = {
    model: $("model").value, stream: true, max_tokens: Number($("max_tokens").value) || 32,
    messages: [{ role: "user", content: prompt }],
    braid: { conversation_id: state.conversation, ...(limits ? { constraints: limits } : {}) },
  };
  state.controller = new AbortController();
  setStreaming(true);
  try {
    await stream(body, answer, limits);
  } catch (e) {
    if (e.name === "AbortError") answer.append(el("p", { class: "muted stopped" }, "Stopped."));
    else showError("chat-error", e);
  } finally {
    state.controller = null;
    setStreaming(false);
    loadConversations();
  }
}

function setStreaming(on) {
  $("send").disabled = on;
  $("stop").disabled = !on;
  if (on) $("stop").focus();
  else $("prompt").focus();
}

async function stream(body, answer, limits) {
  const response = await fetch("/v1/chat/completions", {
    method: "POST", signal: state.controller.signal,
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify(body),
  });
  if (!response.ok) throw await apiError(response);
  const text = answer.querySelector(".text");
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let id = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = event.replace(/^data: /, "");
      if (data === "[DONE]") continue;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      id = chunk.id || id;
      const delta = chunk.choices && chunk.choices[0] ? chunk.choices[0].delta : {};
      if (delta.content) text.textContent += delta.content;
      if (chunk.braid) answer.append(trace(chunk.braid, chunk.model, limits), rating(id));
    }
  }
}

function stop() {
  if (state.controller) state.controller.abort();
}

// -- the decision trace -------------------------------------------------------------------------------------
function trace(info, key, limits) {
  const d = info.decision || {};
  const rows = [
    ["braid", key],
    ["anchor", d.anchor], ["members", (d.members || []).join(", ")], ["strategy", d.strategy],
    ["fusion points", d.fusion_points], ["fusion_dim", d.fusion_dim],
    ["task", info.task ? `${info.task.type} (complexity ${info.task.complexity})` : null],
    ["constraints", limits ? Object.entries(limits).map(([k, v]) => `${k}=${v}`).join(", ") : "none"],
    ["bound by", boundBy(info.explanation)],
    ["timings", timings(info.timings || {})],
  ].filter(([, v]) => v !== undefined && v !== null && v !== "");
  const details = el("details", { class: "trace" }, el("summary", {}, "Decision trace"));
  const dl = el("dl");
  for (const [name, value] of rows) dl.append(el("dt", {}, name), el("dd", { "data-field": name }, String(value)));
  details.append(dl);
  if (info.explanation) details.append(el("h4", {}, "Explanation"), el("pre", { class: "explanation" }, info.explanation));
  details.append(collapsed("Tool calls", info.tool_calls || [], (c) => `${c.name}(${JSON.stringify(c.arguments || {})}) → ${c.error || c.text || ""}`));
  details.append(collapsed("Memory hits", info.memory_hits || [], (h) => `${h.kind} ${Number(h.score).toFixed(3)}: ${h.text}`));
  return details;
}

function boundBy(explanation) {
  const match = /bound by ([^\n:]+)/i.exec(explanation || "");
  return match ? match[1] : explanation ? "none" : null;
}

function timings(t) {
  const names = [["decide", "decide"], ["memory", "recall"], ["tools", "tools"], ["generate", "generate"], ["total", "total"]];
  return names.filter(([k]) => k in t).map(([k, label]) => `${label} ${Number(t[k]).toFixed(1)} ms`).join(" · ");
}

function collapsed(title, items, line) {
  const details = el("details", {}, el("summary", {}, `${title} (${items.length})`));
  const ul = el("ul");
  for (const item of items) ul.append(el("li", {}, line(item)));
  details.append(ul);
  return details;
}

// -- feedback -----------------------------------------------------------------------------------------------
function rating(responseId) {
  const box = el("div", { class: "rate" });
  const comment = el("input", { type: "text", placeholder: "Comment (optional)", "aria-label": "Comment" });
  const result = el("span", { class: "rate-result", role: "status" });
  const rate = async (value) => {
    for (const b of box.querySelectorAll("button")) b.disabled = true;
    try {
      const out = await api("/v1/feedback", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ response_id: responseId, rating: value, comment: comment.value || null }),
      });
      result.textContent = !out.learned
        ? "Rating saved (a pinned braid: the meta-braider did not choose it)."
        : out.personal
          ? `Your own correction learned from it (update ${out.updates}); the shared policy did not move.`
          : `Meta-braider updated (update ${out.updates}): this braid's policy probability ` +
            `${fmt(out.probability_before)} → ${fmt(out.probability_after)}`;
    } catch (e) {
      result.textContent = `Rating failed: ${e.message}`;
    }
  };
  const up = el("button", { type: "button", "aria-label": "Good answer", class: "up" }, "▲ Good");
  const down = el("button", { type: "button", "aria-label": "Bad answer", class: "down" }, "▼ Bad");
  up.addEventListener("click", () => rate(1));
  down.addEventListener("click", () => rate(-1));
  box.append(up, down, comment, result);
  return box;
}

function fmt(p) {
  return p === null || p === undefined ? "?" : p < 0.001 ? p.toExponential(2) : p.toFixed(4);
}

// -- dashboard ----------------------------------------------------------------------------------------------
async function loadDashboard() {
  showError("dashboard-error", null);
  try {
    const [sweeps, decisions] = await Promise.all([api("/v1/dashboard/sweeps"), api("/v1/dashboard/decisions")]);
    drawSweeps(sweeps);
    drawDecisions(decisions);
  } catch (e) {
    showError("dashboard-error", e);
  }
}

function drawSweeps(data) {
  $("sweeps-source").textContent = data.records
    ? `${data.count} records from ${data.records}` : "No sweep records (start the server with records: …).";
  const box = $("sweeps");
  box.replaceChildren();
  for (const [type, t] of Object.entries(data.types)) {
    const card = el("div", { class: "card sweep", "data-type": type }, el("h3", {}, type));
    card.append(scatter(t.points, type));
    if (t.best) {
      card.append(table(["best config", "score", "decode ms", "trained params"],
        [[t.best.key, t.best.score.toFixed(3), t.best.decode_ms.toFixed(2), t.best.trained_params]]));
    }
    box.append(card);
  }
}

function scatter(points, title) {
  const W = 480, H = 260, P = 56;
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
    "aria-label": `${title}: score against decode ms, ${points.length} records` });
  if (!points.length) return svg;
  const xs = points.map((p) => p.decode_ms), ys = points.map((p) => p.score);
  const sx = scale(Math.min(...xs), Math.max(...xs), P, W - 10), sy = scale(Math.min(...ys), Math.max(...ys), H - P, 10);
  const front = points.filter((p) => p.pareto).sort((a, b) => a.decode_ms - b.decode_ms);
  svg.append(svgEl("polyline", { class: "front", points: front.map((p) => `${sx(p.decode_ms)},${sy(p.score)}`).join(" ") }));
  for (const p of points) {
    const dot = svgEl("circle", { cx: sx(p.decode_ms), cy: sy(p.score), r: p.pareto ? 4 : 3, class: p.pareto ? "pareto" : "point" });
    dot.append(svgEl("title", {}, `${p.key}\nscore ${p.score.toFixed(3)}, ${p.decode_ms.toFixed(2)} ms`));
    svg.append(dot);
  }
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  svg.append(svgEl("text", { x: P, y: H - 22 }, x0.toFixed(2)), svgEl("text", { x: W - 10, y: H - 22, "text-anchor": "end" }, x1.toFixed(2)));
  svg.append(svgEl("text", { x: P - 4, y: H - P, "text-anchor": "end" }, y0.toFixed(2)), svgEl("text", { x: P - 4, y: 18, "text-anchor": "end" }, y1.toFixed(2)));
  svg.append(svgEl("text", { x: W / 2, y: H - 8, "text-anchor": "middle" }, "decode ms per token →"));
  svg.append(svgEl("text", { x: 12, y: H / 2, transform: `rotate(-90 12 ${H / 2})`, "text-anchor": "middle" }, "score →"));
  return svg;
}

function drawDecisions(data) {
  const box = $("decisions");
  box.replaceChildren();
  const rows = [];
  for (const [type, counts] of Object.entries(data.by_type)) {
    for (const [model, n] of Object.entries(counts)) rows.push([type, model, n]);
  }
  box.append(el("h3", {}, "Choices per task type"),
    rows.length ? table(["task type", "braid", "answers"], rows) : el("p", { class: "muted" }, "No answers yet."));
  box.append(el("h3", {}, "Feedback over time"), feedbackChart(data.feedback));
  box.append(el("h3", {}, "Recent answers"),
    table(["time", "task type", "braid", "rating"],
      data.recent.map((r) => [new Date(r.time * 1000).toLocaleTimeString(), r.type, r.model, r.rating ?? "–"])));
}

function feedbackChart(feedback) {
  const W = 480, H = 120, P = 20;
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart feedback", role: "img",
    "aria-label": `${feedback.length} ratings over time` });
  const sx = scale(0, Math.max(feedback.length - 1, 1), P, W - P), sy = scale(-1, 1, H - P, P);
  svg.append(svgEl("line", { x1: P, x2: W - P, y1: sy(0), y2: sy(0), stroke: "#d5dadd" }));
  feedback.forEach((f, i) => svg.append(svgEl("circle", { cx: sx(i), cy: sy(f.rating), r: 4, class: f.rating > 0 ? "pareto" : "point" })));
  return svg;
}

// -- small DOM helpers --------------------------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children);
  return node;
}

function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function table(head, rows) {
  const t = el("table");
  t.append(el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col" }, h)))));
  const body = el("tbody");
  for (const row of rows) body.append(el("tr", {}, ...row.map((c) => el("td", {}, String(c)))));
  t.append(body);
  return t;
}

function scale(lo, hi, a, b) {
  const span = hi - lo || 1;
  return (v) => a + ((v - lo) / span) * (b - a);
}

// -- wiring -------------------------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, $("key").value);
    $("key").value = "";
    enter();
  });
  $("logout").addEventListener("click", () => showLogin());
  $("tab-chat").addEventListener("click", () => show("chat"));
  $("tab-dashboard").addEventListener("click", () => show("dashboard"));
  $("new-conversation").addEventListener("click", () => newConversation().catch((e) => showError("chat-error", e)));
  $("composer").addEventListener("submit", send);
  $("stop").addEventListener("click", stop);
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      $("composer").requestSubmit();
    }
  });
  enter();
});
