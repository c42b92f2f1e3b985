// A deployment's predicted assets as a grid: filters, selection, submission to the feedback loop: the
// cards ticked by hand, or every REVIEWED prediction the filter matches across all pages (counted by the
// API first, so the button says how many will go where before anyone presses it).
import { api, badge, el, localInput, number, prefix, say, start, summary, vocabulary, when } from "./common.js";

const PAGE = 24;
const deploymentId = document.getElementById("deployment-name").dataset.deployment;
const form = document.getElementById("filters");
const grid = document.getElementById("grid");
const submitButton = document.getElementById("submit-selected");
const versionSelect = document.getElementById("dataset-version");
// The count of REVIEWED predictions matching the filter once "Select all reviewed" is pressed; null while
// the selection is the cards ticked by hand.
let allReviewed = null;

// The grid's state lives in the address, so a filtered view can be shared and reloaded.
function query() {
  return new URLSearchParams(location.search);
}

function fillForm(params) {
  for (const field of form.elements) {
    if (!field.name) continue;
    if (field.name === "tags") field.value = params.getAll("tags").join(", ");
    else if (field.type === "datetime-local") field.value = localInput(params.get(field.name));
    else field.value = params.get(field.name) ?? field.value;
  }
}

// The window of prediction time a dashboard link opens the grid on: kept while the form filters further.
const WINDOW = ["predicted_since", "predicted_until"];

function readForm() {
  const params = new URLSearchParams();
  for (const name of WINDOW) if (query().has(name)) params.set(name, query().get(name));
  for (const field of form.elements) {
    if (!field.name || !field.value) continue;
    if (field.name === "tags") {
      field.value.split(",").map((t) => t.trim()).filter(Boolean).forEach((t) => params.append("tags", t));
    } else if (field.type === "datetime-local") {
      params.set(field.name, new Date(field.value).toISOString());
    } else {
      params.set(field.name, field.value);
    }
  }
  return params;
}

function card(asset) {
  const shown = asset.review ?? asset.champion_prediction;
  return el(
    "figure",
    { class: "card", "data-prediction": asset.prediction_id, "data-status": asset.status },
    el("input", { type: "checkbox", class: "pick", "aria-label": "select" }),
    el(
      "a",
      { href: `${prefix}/predictions/${asset.prediction_id}` },
      el("img", { src: asset.image_url, alt: asset.prediction_id, loading: "lazy" }),
    ),
    el(
      "figcaption",
      {},
      badge(asset.status.replace("_", " "), asset.status.toLowerCase()),
      // Audited predictions sit in the queue at random: their reviews make the unbiased quality figures.
      asset.audit ? el("span", { class: "badge audit", title: "random audit slice: review it as it comes" }, "audit") : null,
      asset.duplicates > 1 ? el("span", { class: "duplicates", title: "near-duplicates shown as this one" }, `×${asset.duplicates}`) : null,
      el("span", { class: "class" }, summary(shown)),
      el("span", { class: "score" }, `outlier ${number(asset.outlier_score, 2)}`),
      el("span", { class: "acquisition" }, `acquisition ${number(asset.acquisition_score, 2)}`),
      el("span", { class: "time" }, when(asset.created_at)),
      asset.tags.length ? el("span", { class: "tags" }, asset.tags.join(", ")) : null,
    ),
  );
}

function selected() {
  return [...grid.querySelectorAll(".card")].filter((c) => c.querySelector(".pick").checked);
}

function updateSubmit() {
  const count = allReviewed ?? selected().length;
  const version = versionSelect.selectedOptions[0]?.textContent;
  submitButton.disabled = count === 0 || !versionSelect.value;
  if (allReviewed !== null) {
    submitButton.textContent = `Submit ${count} reviewed prediction${count === 1 ? "" : "s"} to ${version}`;
  } else {
    submitButton.textContent = count ? `Submit ${count} to feedback loop` : "Submit to feedback loop";
  }
}

// The grid's filter without its paging and order: what counting and submitting all reviewed take.
function filterOnly() {
  const params = query();
  for (const name of ["limit", "offset", "order", "status"]) params.delete(name);
  return params;
}

async function selectAllReviewed() {
  const { REVIEWED } = vocabulary.ReviewStatus;
  const status = query().get("status");
  const params = filterOnly();
  params.set("status", REVIEWED);
  const { count } = status && status !== REVIEWED ? { count: 0 } : await api("GET", `/v1/deployments/${deploymentId}/predictions/count?${params}`);
  for (const c of grid.querySelectorAll(".card")) c.querySelector(".pick").checked = c.dataset.status === REVIEWED;
  allReviewed = count;
  document.getElementById("selection").textContent = `${count} reviewed prediction${count === 1 ? "" : "s"} match the filter, on every page`;
  updateSubmit();
}

function clearAllReviewed() {
  allReviewed = null;
  document.getElementById("selection").textContent = "";
}

function showWindow(params) {
  const [since, until] = WINDOW.map((name) => params.get(name));
  const note = document.getElementById("window");
  if (!since && !until) {
    note.replaceChildren();
    return;
  }
  const clear = el("a", { href: "#" }, "show every time");
  clear.addEventListener("click", (event) => {
    event.preventDefault();
    const rest = query();
    for (const name of WINDOW) rest.delete(name);
    go(rest);
  });
  note.replaceChildren(`Predicted from ${when(since)} until ${when(until)} (a drift window) · `, clear);
}

async function load() {
  const params = query();
  showWindow(params);
  params.set("limit", PAGE);
  params.set("offset", params.get("offset") ?? 0);
  const { items, total } = await api("GET", `/v1/deployments/${deploymentId}/predictions?${params}`);
  grid.replaceChildren(...items.map(card));
  clearAllReviewed();
  const offset = Number(params.get("offset"));
  document.getElementById("total").textContent =
    total ? `${offset + 1}-${offset + items.length} of ${total}` : "no predicted assets match";
  document.getElementById("previous").disabled = offset === 0;
  document.getElementById("next").disabled = offset + items.length >= total;
  // Enabled once the grid holds this page's cards: a click before would select nothing.
  document.getElementById("select-reviewed").disabled = items.length === 0;
  updateSubmit();
}

function go(params) {
  history.replaceState(null, "", `?${params}`);
  load().catch((error) => say(error.message, true));
}

async function datasetVersions(deployment) {
  const { items } = await api("GET", `/v1/deployments/${deployment.id}/feedback-loop`);
  const options = await Promise.all(
    items.map(async (version) => {
      const dataset = await api("GET", `/v1/datasets/${version.dataset_id}`);
      return el("option", { value: version.id }, `${dataset.name} · ${version.version}`);
    }),
  );
  versionSelect.replaceChildren(...(options.length ? options : [el("option", { value: "" }, "no feedback loop")]));
}

async function submit() {
  const body = { dataset_version_id: versionSelect.value };
  let answer;
  if (allReviewed !== null) {
    answer = await api("POST", `/v1/deployments/${deploymentId}/predictions/submit-reviewed?${filterOnly()}`, body);
  } else {
    body.prediction_ids = selected().map((c) => c.dataset.prediction);
    answer = await api("POST", `/v1/deployments/${deploymentId}/predictions/submit`, body);
  }
  say(`Submitted ${answer.submitted.length} to the feedback loop.`);
  await load();
}

async function page() {
  const deployment = await api("GET", `/v1/deployments/${deploymentId}`);
  document.getElementById("deployment-name").textContent = `${deployment.name} · predictions`;
  fillForm(query());
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    go(readForm());
  });
  for (const [id, step] of [["previous", -PAGE], ["next", PAGE]]) {
    document.getElementById(id).addEventListener("click", () => {
      const params = query();
      params.set("offset", Math.max(0, Number(params.get("offset") ?? 0) + step));
      go(params);
    });
  }
  grid.addEventListener("change", () => {
    clearAllReviewed(); // a card ticked by hand: the selection is the ticked cards again
    updateSubmit();
  });
  versionSelect.addEventListener("change", updateSubmit);
  document.getElementById("select-reviewed").addEventListener("click", () => selectAllReviewed().catch((error) => say(error.message, true)));
  submitButton.addEventListener("click", () => submit().catch((error) => say(error.message, true)));
  await datasetVersions(deployment);
  await load();
}

start(page);
