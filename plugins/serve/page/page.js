// The page of `transduce serve`: calls the /v1 endpoints of the server that served it, nothing else.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "transduce-serve-token";

function headers() {
  const result = { "content-type": "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) result.authorization = "Bearer " + token;
  return result;
}

// The JSON answer of a /v1 endpoint; an error answer throws its message (and asks for a token on 401).
async function call(path, body) {
  const init = body === undefined ? { headers: headers() } : { method: "POST", headers: headers(), body: JSON.stringify(body) };
  const response = await fetch(path, init);
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    throw new Error(`the server answered ${response.status} without JSON`);
  }
  if (response.status === 401) $("token-row").hidden = false;
  if (!response.ok) throw new Error(data && data.error ? data.error.message : `the server answered ${response.status}`);
  return data;
}

function showError(error) {
  $("error").textContent = error ? String(error.message || error) : "";
  $("error").hidden = !error;
}

let models = [];

async function loadModels() {
  try {
    models = (await call("/v1/models")).models;
  } catch (error) {
    showError(error);
    return;
  }
  const picker = $("model");
  picker.replaceChildren(...models.map((m) => new Option(m.name, m.name)));
  $("model-picker").hidden = models.length < 2;
  describeModel();
  showError(null);
}

function describeModel() {
  const model = models.find((m) => m.name === $("model").value) || models[0];
  if (!model) return;
  const metrics = Object.entries(model.metrics).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ");
  const where = model.metrics_split ? ` on ${model.metrics_split}` : "";
  $("model-info").textContent = `${model.name}: search ${model.search.name}` + (metrics ? `; ${metrics}${where}` : "");
}

function setMode() {
  const chat = $("mode").value === "chat";
  $("go").textContent = chat ? "Send" : "Translate";
  $("search-controls").hidden = chat;
  $("translation").hidden = true;
  $("chat").hidden = !chat;
  showError(null);
}

function setSearch() {
  const beam = $("search").value === "beam";
  for (const label of document.querySelectorAll("label.beam")) label.hidden = !beam;
}

function translateRequest(text) {
  const request = { texts: [text], model: $("model").value || null, attention: true };
  const search = $("search").value;
  if (search) request.search = search;
  if (search === "beam") request.options = { size: Number($("size").value), n_best: Number($("nbest-count").value) };
  return request;
}

function score(value) {
  return value === null || value === undefined ? "" : value.toFixed(3);
}

function showTranslation(result) {
  $("output").textContent = result.text;
  $("score").textContent = result.score === null ? "" : `log-probability ${score(result.score)}`;
  const rows = result.alternatives.map((candidate, i) => {
    const row = document.createElement("tr");
    for (const [value, number] of [[String(i + 1), true], [candidate.text, false], [score(candidate.score), true]]) {
      const cell = row.insertCell();
      cell.textContent = value;
      if (number) cell.className = "number";
    }
    return row;
  });
  $("nbest").tBodies[0].replaceChildren(...rows);
  $("nbest").hidden = result.alternatives.length < 2;
  // The SVG is the server's own drawing (model.heatmap_svg), its texts escaped there.
  $("heatmap").querySelector(".picture").innerHTML = result.heatmap_svg || "";
  $("heatmap").hidden = !result.heatmap_svg;
  $("translation").hidden = false;
}

function addChatLine(text, who) {
  const line = document.createElement("li");
  line.className = who;
  line.textContent = text;
  $("chatlog").append(line);
  return line;
}

async function submit(event) {
  event.preventDefault();
  const text = $("text").value;
  if (!text.trim()) return;
  $("go").disabled = true;
  try {
    if ($("mode").value === "chat") {
      addChatLine(text, "you");
      $("text").value = "";
      const answer = await call("/v1/chat", { text, model: $("model").value || null });
      addChatLine(answer.reply, "model");
    } else {
      const answer = await call("/v1/translate", translateRequest(text));
      showTranslation(answer.results[0]);
    }
    showError(null);
  } catch (error) {
    showError(error);
  } finally {
    $("go").disabled = false;
  }
}

function saveToken() {
  sessionStorage.setItem(TOKEN_KEY, $("token").value);
  $("token-row").hidden = true;
  loadModels();
}

document.addEventListener("DOMContentLoaded", () => {
  $("ask").addEventListener("submit", submit);
  $("text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("ask").requestSubmit();
    }
  });
  $("mode").addEventListener("change", setMode);
  $("search").addEventListener("change", setSearch);
  $("model").addEventListener("change", describeModel);
  $("token-save").addEventListener("click", saveToken);
  setMode();
  loadModels();
});
