// The admin page: a thin client of /admin/api. The admin key stays in this
// tab's memory only (never stored), and every value is inserted as text.
"use strict";

const state = { key: "", actor: "", memberTokens: false };
const $ = (id) => document.getElementById(id);

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + state.key };
  if (state.actor) headers["X-Tokengate-Actor"] = state.actor;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch("/admin/api" + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.detail || response.status + " " + response.statusText);
  return data;
}

function say(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "–" : String(text);
  row.appendChild(td);
  return td;
}

async function loadTokens() {
  const query = new URLSearchParams();
  if ($("filter-type").value) query.set("type", $("filter-type").value);
  if ($("filter-status").value) query.set("status", $("filter-status").value);
  const { tokens } = await api("GET", "/tokens?" + query);
  const body = $("tokens");
  body.replaceChildren();
  for (const t of tokens) {
    const row = document.createElement("tr");
    for (const key of ["token", "type", "name", "owner", "created_by", "created_at",
                       "last_used_at", "expires_at", "status"]) cell(row, t[key]);
    const actions = cell(row, "");
    if (t.status === "active") {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Revoke";
      button.addEventListener("click", () => run(async () => {
        await api("DELETE", "/tokens/" + encodeURIComponent(t.token));
        say("Revoked " + t.token);
        await loadTokens();
      }));
      actions.appendChild(button);
    }
    body.appendChild(row);
  }
}

async function loadSettings() {
  try {
    const settings = await api("GET", "/settings");
    state.memberTokens = settings.member_tokens;
    $("member-state").textContent = settings.member_tokens ? "enabled" : "disabled";
    $("member-toggle").textContent = settings.member_tokens ? "Disable" : "Enable";
    $("member-toggle").hidden = false;
  } catch (err) {  // members may not read settings
    $("member-state").textContent = "managed by an admin";
    $("member-toggle").hidden = true;
  }
}

async function run(action) {
  try {
    await action();
  } catch (err) {
    say(err.message, true);
  }
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  state.key = $("key").value;
  state.actor = $("actor").value.trim();
  run(async () => {
    await loadTokens();
    await loadSettings();
    $("main").hidden = false;
    say("Connected" + (state.actor ? " as " + state.actor : " as the operator"));
  });
});

$("refresh").addEventListener("click", () => run(loadTokens));
$("filter-type").addEventListener("change", () => run(loadTokens));
$("filter-status").addEventListener("change", () => run(loadTokens));

$("revoke-all").addEventListener("click", () => {
  const type = $("filter-type").value;
  const what = type ? "all " + type + " tokens" : "all tokens";
  if (!window.confirm("Revoke " + what + "? Clients using them stop working at once.")) return;
  run(async () => {
    const { revoked } = await api("POST", "/tokens/revoke-all", type ? { type } : {});
    say("Revoked " + revoked + " token(s)");
    await loadTokens();
  });
});

$("create").addEventListener("submit", (event) => {
  event.preventDefault();
  const body = { type: $("create-type").value, name: $("create-name").value };
  if ($("create-days").value) body.expires_in_days = Number($("create-days").value);
  run(async () => {
    const created = await api("POST", "/tokens", body);
    $("created-token").textContent = created.token;
    $("created-secret").textContent = created.secret;
    $("created").hidden = false;
    say("Created " + created.token);
    await loadTokens();
  });
});

$("member-toggle").addEventListener("click", () => run(async () => {
  await api("PUT", "/settings/member-tokens", { enabled: !state.memberTokens });
  await loadSettings();
}));
