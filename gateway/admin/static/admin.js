// The admin page: a thin client of /admin/api. The admin key stays in this
// tab's memory only (never stored), and every value is inserted as text.
"use strict";

// `session` counts connections: a reply that arrives after the admin key or
// the actor changed belongs to the old connection and is dropped, so one
// user's list never shows under another's name.
const state = { key: "", actor: "", memberTokens: false, session: 0 };
const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + state.key };
  if (state.actor) headers["X-Tokengate-Actor"] = state.actor;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch("/admin/api" + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new ApiError(response.status, data.detail || response.status + " " + response.statusText);
  }
  return data;
}

// The API speaks to programs (it names its header); the page speaks to the
// person at the form, who knows the header as the "Act as" field.
function inPageTerms(err) {
  if (err.status === 401) return "The admin key was not accepted: check it and connect again.";
  if (err.message === "unknown actor") {
    return "There is no user \u201c" + state.actor + "\u201d to act as: check \u201cAct as\u201d " +
      "(leave it empty to act as the operator).";
  }
  return err.message
    .replace(/send X-Tokengate-Actor/g, "enter their username in \u201cAct as\u201d")
    .replace(/X-Tokengate-Actor/g, "\u201cAct as\u201d");
}

function say(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

// The one-time secret belongs to the moment it was created: it goes away as
// soon as anything else changes (a revoke, another actor or key).
function forgetSecret() {
  $("created").hidden = true;
  $("created-token").textContent = "";
  $("created-secret").textContent = "";
}

// Nothing of a previous connection stays on screen.
function clearView() {
  forgetSecret();
  $("main").hidden = true;
  $("tokens").replaceChildren();
  $("member-state").textContent = "…";
  $("member-toggle").hidden = true;
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "–" : String(text);
  row.appendChild(td);
  return td;
}

// "2026-12-03T18:43:25.264Z" shows as "2026-12-03 18:43"; the full time is the tooltip.
function timeCell(row, iso) {
  if (!iso) return cell(row, null);
  const td = cell(row, "");
  const time = document.createElement("time");
  time.dateTime = iso;
  time.title = iso;
  time.textContent = iso.slice(0, 16).replace("T", " ");
  td.appendChild(time);
  return td;
}

// A grant as one line, the way the create form takes it.
function grantText(grant) {
  if (typeof grant === "string") return grant;
  const methods = grant.methods && !(grant.methods.length === 1 && grant.methods[0] === "*")
    ? grant.methods.join(",") + " " : "";
  return methods + (grant.class !== undefined ? "class:" + grant.class : grant.path);
}

// What narrows a token, and its roll state: one line each, as text.
function restrictionsCell(row, t) {
  const lines = [];
  if (t.scopes) lines.push("scopes: " + t.scopes.map(grantText).join("; "));
  if (t.allowed_networks) lines.push("from " + t.allowed_networks.join(", "));
  if (t.rate_limit) {
    lines.push(t.rate_limit.limit + " per " + t.rate_limit.window_seconds + " s");
  }
  if (t.rolled_at) {
    lines.push("rolled " + t.rolled_at.slice(0, 16).replace("T", " ") +
      "; old secret until " + t.previous_secret_expires_at.slice(0, 16).replace("T", " "));
  }
  const td = cell(row, lines.length ? "" : null);
  td.className = "restrictions";
  for (const line of lines) {
    const div = document.createElement("div");
    div.textContent = line;
    td.appendChild(div);
  }
}

function showSecret(what, token, secret) {
  $("created-what").textContent = what;
  $("created-token").textContent = token;
  $("created-secret").textContent = secret;
  $("created").hidden = false;
}

function actionButton(parent, label, action) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.addEventListener("click", () => run(action));
  parent.appendChild(button);
}

async function loadTokens() {
  const session = state.session;
  const query = new URLSearchParams();
  if ($("filter-type").value) query.set("type", $("filter-type").value);
  if ($("filter-status").value) query.set("status", $("filter-status").value);
  const { tokens } = await api("GET", "/tokens?" + query);
  if (session !== state.session) return;
  const body = $("tokens");
  body.replaceChildren();
  for (const t of tokens) {
    const row = document.createElement("tr");
    cell(row, t.token).className = "fixed";
    cell(row, t.type).className = "fixed";
    for (const key of ["name", "owner", "created_by"]) cell(row, t[key]);
    for (const key of ["created_at", "last_used_at", "expires_at"]) timeCell(row, t[key]);
    cell(row, t.status).className = "fixed";
    restrictionsCell(row, t);
    const actions = cell(row, "");
    actions.className = "fixed actions";
    if (t.status === "active" && (t.type === "workspace" || t.type === "member")) {
      actionButton(actions, "Roll", async () => {
        forgetSecret();
        const session = state.session;
        const grace = $("roll-grace").value === "" ? undefined : Number($("roll-grace").value);
        const rolled = await api("POST", "/tokens/" + encodeURIComponent(t.token) + "/roll",
          grace === undefined ? {} : { grace_seconds: grace });
        if (session !== state.session) return;
        showSecret("Save the new secret now: it is shown only this once.", rolled.token,
          rolled.secret);
        say("Rolled " + rolled.token + "; the old secret works until " +
          rolled.previous_secret_expires_at.slice(0, 19).replace("T", " ") + " UTC");
        await loadTokens();
      });
    }
    if (t.status === "active") {
      actionButton(actions, "Revoke", async () => {
        forgetSecret();
        await api("DELETE", "/tokens/" + encodeURIComponent(t.token));
        say("Revoked " + t.token);
        await loadTokens();
      });
    }
    body.appendChild(row);
  }
}

async function loadSettings() {
  const session = state.session;
  let settings = null;
  try {
    settings = await api("GET", "/settings");
  } catch (err) {  // members may not read settings
    if (err.status === 401) throw err;
  }
  if (session !== state.session) return;
  if (settings === null) {
    $("member-state").textContent = "managed by an admin";
    $("member-toggle").hidden = true;
    return;
  }
  state.memberTokens = settings.member_tokens;
  $("member-state").textContent = settings.member_tokens ? "enabled" : "disabled";
  $("member-toggle").textContent = settings.member_tokens ? "Disable" : "Enable";
  $("member-toggle").hidden = false;
}

async function run(action) {
  const session = state.session;
  try {
    await action();
  } catch (err) {
    if (session === state.session) say(inPageTerms(err), true);
  }
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  state.session += 1;
  clearView();
  state.key = $("key").value;
  state.actor = $("actor").value.trim();
  const session = state.session;
  const who = state.actor ? "as " + state.actor : "as the operator";
  say("Connecting " + who + "…");
  run(async () => {
    try {
      await loadTokens();
      await loadSettings();
    } catch (err) {
      if (session === state.session) clearView();
      throw err;
    }
    if (session !== state.session) return;
    $("main").hidden = false;
    say("Connected " + who);
  });
});

// Editing who the page acts for hides the secret at once: it was made for the old actor.
$("actor").addEventListener("input", forgetSecret);
$("key").addEventListener("input", forgetSecret);

$("refresh").addEventListener("click", () => run(loadTokens));
$("filter-type").addEventListener("change", () => run(loadTokens));
$("filter-status").addEventListener("change", () => run(loadTokens));

$("revoke-all").addEventListener("click", () => {
  const type = $("filter-type").value;
  const what = type ? "all " + type + " tokens" : "all tokens";
  if (!window.confirm("Revoke " + what + "? Clients using them stop working at once.")) return;
  run(async () => {
    forgetSecret();
    const { revoked } = await api("POST", "/tokens/revoke-all", type ? { type } : {});
    say("Revoked " + revoked + " token(s)");
    await loadTokens();
  });
});

// One grant per line, as the CLI's --scope takes it: read-only, class:NAME, PATH or
// METHODS PATH. The API checks them; this only shapes them.
function parseGrants(text) {
  const grants = [];
  for (const line of text.split("\n")) {
    const words = line.trim().split(/\s+/).filter(Boolean);
    if (words.length === 0) continue;
    if (words.length === 1 && words[0] === "read-only") {
      grants.push("read-only");
      continue;
    }
    if (words.length > 2) throw new ApiError(422, "Scopes: \u201c" + line.trim() +
      "\u201d is not a grant (read-only, class:NAME, PATH or METHODS PATH)");
    const target = words[words.length - 1];
    const grant = target.startsWith("class:") ? { class: target.slice(6) } : { path: target };
    if (words.length === 2) grant.methods = words[0].split(",").filter(Boolean);
    grants.push(grant);
  }
  return grants;
}

function createBody() {
  const body = { type: $("create-type").value, name: $("create-name").value };
  if ($("create-days").value) body.expires_in_days = Number($("create-days").value);
  if ($("create-scopes").value.trim()) body.scopes = parseGrants($("create-scopes").value);
  const networks = $("create-networks").value.split(/[\s,]+/).filter(Boolean);
  if (networks.length) body.allowed_networks = networks;
  if ($("create-limit").value) {
    body.rate_limit = { limit: Number($("create-limit").value),
      window_seconds: Number($("create-window").value || 60) };
  }
  return body;
}

$("create").addEventListener("submit", (event) => {
  event.preventDefault();
  run(async () => {
    forgetSecret();
    const body = createBody();
    const session = state.session;
    const created = await api("POST", "/tokens", body);
    if (session !== state.session) return;
    showSecret("Save the secret now: it is shown only this once.", created.token,
      created.secret);
    say("Created " + created.token);
    await loadTokens();
  });
});

$("member-toggle").addEventListener("click", () => run(async () => {
  await api("PUT", "/settings/member-tokens", { enabled: !state.memberTokens });
  await loadSettings();
}));
