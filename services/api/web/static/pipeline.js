// A deployment's pipeline settings, each part editable with "Save" and "Save and activate" (the API's
// refusals shown in the form that caused them), the deployment's own settings (confidence threshold,
// shadow), champion against shadow with the promote button, the promotion gate's latest decisions, and the
// project's latest jobs.
import {
  api,
  attempt,
  badge,
  datasetVersionChoices,
  el,
  facts,
  jobRows,
  modelVersionChoices,
  number,
  options,
  pipelineBadges,
  say,
  start,
  when,
} from "./common.js";

const deploymentId = document.getElementById("deployment-name").dataset.deployment;
const base = `/v1/deployments/${deploymentId}`;
const METRIC_NAMES = { accuracy: "Accuracy", ap: "AP", ap50: "AP50", ar: "AR", reviewed: "Reviewed" };
// Segmentation is measured on the polygons' boxes and on their masks.
const MASK_NAMES = { mask_ap: "Mask AP", mask_ap50: "Mask AP50", mask_ar: "Mask AR" };
const NOT_SET = ["", "— choose —"];
let datasetVersions = []; // [id, name] of every dataset version of the project
let modelVersions = []; // [id, name] of every model version of the project

function onOff(active) {
  return badge(active ? "active" : "inactive", active ? "on" : "off");
}

function nameOf(choices, id) {
  return choices.find(([value]) => value === id)?.[1] ?? id;
}

// One editable row of a list (alias and dataset version; parameter and value), with its remove button.
function row(container, ...fields) {
  const line = el("div", { class: "row" }, ...fields, el("button", { type: "button", class: "remove", "aria-label": "remove" }, "×"));
  line.querySelector(".remove").addEventListener("click", () => line.remove());
  container.append(line);
}

function datasetVersionRow(alias = "", id = "") {
  const select = el("select", { name: "dataset_version", "aria-label": "dataset version" });
  options(select, [NOT_SET, ...datasetVersions], id);
  row(document.getElementById("ct-dataset-versions"), el("input", { name: "alias", value: alias, placeholder: "alias (train, test…)", "aria-label": "alias" }), select);
}

function parameterRow(name = "", value) {
  const shown = value === undefined ? "" : JSON.stringify(value);
  row(
    document.getElementById("ct-parameters"),
    el("input", { name: "parameter", value: name, placeholder: "name", "aria-label": "parameter name" }),
    el("input", { name: "value", value: shown, placeholder: "value", "aria-label": "parameter value" }),
  );
}

// A parameter's value: JSON when it reads as JSON (numbers, true, lists), else the text itself.
function parsed(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

// A trigger policy without the rules it does not set.
function rulesOf(policy) {
  return Object.fromEntries(Object.entries(policy).filter(([, value]) => value !== null));
}

async function showSettings(deployment) {
  document.getElementById("deployment-name").textContent = `${deployment.name} · pipeline`;
  document.getElementById("badges").replaceChildren(...pipelineBadges(deployment));

  const data = deployment.training_data;
  facts(document.getElementById("training-data"), [
    ["Dataset version", data.dataset_version_id ? nameOf(datasetVersions, data.dataset_version_id) : "not set"],
    ["Reference", data.status],
    ["Reason", data.reason],
  ]);
  options(document.querySelector("#training-data-form select"), [NOT_SET, ...datasetVersions], data.dataset_version_id ?? "");

  const attached = deployment.feedback_loop.dataset_version_ids;
  document.getElementById("feedback-loop").replaceChildren(
    ...(attached.length ? attached : [null]).map((id) => {
      if (!id) return el("li", {}, "none attached");
      const detach = el("button", { type: "button", class: "detach", "data-version": id }, "Detach");
      detach.addEventListener("click", () => act(() => api("DELETE", `${base}/feedback-loop/${id}`), "Detached."));
      return el("li", { "data-version": id }, `${nameOf(datasetVersions, id)} `, detach);
    }),
  );
  options(
    document.querySelector("#feedback-loop-form select"),
    [NOT_SET, ...datasetVersions.filter(([id]) => !attached.includes(id))],
    "",
  );

  const ct = deployment.continuous_training;
  facts(document.getElementById("continuous-training"), [
    ["State", onOff(ct.active)],
    ["Threshold", ct.threshold],
    ["Trigger policy", JSON.stringify(rulesOf(ct.policy))],
    ["Last training requested by", ct.last_trigger
      ? `${ct.last_trigger.rule} (${Object.entries(ct.last_trigger.figures).map(([k, v]) => `${k}=${v}`).join(", ")})`
      : ct.last_request_id ? "the submitted count" : "—"],
    ["Submitted since training", el("span", { id: "submitted-since-training" }, String(ct.submitted_since_training))],
    ["Dataset versions", Object.entries(ct.dataset_versions).map(([alias, id]) => `${alias}: ${nameOf(datasetVersions, id)}`).join("; ") || "—"],
    ["Training parameters", Object.entries(ct.training_parameters).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ") || "—"],
  ]);
  document.getElementById("ct-dataset-versions").replaceChildren();
  for (const [alias, id] of Object.entries(ct.dataset_versions)) datasetVersionRow(alias, id);
  // Never configured: the parameters start as the champion's, as a new training would inherit them.
  let parameters = ct.training_parameters;
  if (ct.threshold === null && !Object.keys(parameters).length && deployment.champion_model_version_id) {
    parameters = (await api("GET", `/v1/model-versions/${deployment.champion_model_version_id}`)).training_parameters ?? {};
  }
  document.getElementById("ct-parameters").replaceChildren();
  for (const [name, value] of Object.entries(parameters)) parameterRow(name, value);
  document.querySelector("#continuous-training-form [name=threshold]").value = ct.threshold ?? "";
  document.querySelector("#continuous-training-form [name=policy]").value = JSON.stringify(rulesOf(ct.policy));
  const ctToggle = document.getElementById("ct-toggle");
  ctToggle.textContent = ct.active ? "Deactivate" : "Activate";
  ctToggle.dataset.active = String(ct.active);

  const cd = deployment.continuous_deployment;
  facts(document.getElementById("continuous-deployment"), [
    ["State", onOff(cd.active)],
    ["Policy", cd.policy.replaceAll("_", " ")],
  ]);
  document.querySelector("#continuous-deployment-form [name=policy]").value = cd.policy;
  const cdToggle = document.getElementById("cd-toggle");
  cdToggle.textContent = cd.active ? "Deactivate" : "Activate";
  cdToggle.dataset.active = String(cd.active);

  document.querySelector("#threshold-form [name=confidence_threshold]").value = deployment.confidence_threshold;
  const candidates = modelVersions.filter(([id]) => id !== deployment.champion_model_version_id);
  options(document.querySelector("#shadow-form select"), [NOT_SET, ...candidates], deployment.shadow_model_version_id ?? "");
  document.getElementById("remove-shadow").disabled = !deployment.shadow_model_version_id;
}

function metricName(metric, metrics) {
  if (metric in MASK_NAMES) return MASK_NAMES[metric];
  const boxes = metrics.some((m) => m in MASK_NAMES) && ["ap", "ap50", "ar"].includes(metric);
  return `${boxes ? "Box " : ""}${METRIC_NAMES[metric] ?? metric}`;
}

async function showComparison(deployment) {
  const { champion, shadow, agreement, window } = await api("GET", `${base}/comparison`);
  const metrics = [...new Set([...Object.keys(champion?.quality ?? {}), ...Object.keys(shadow?.quality ?? {})])];
  const line = (name, value) => el("tr", {}, el("th", {}, name), el("td", {}, value(champion)), el("td", {}, shadow ? value(shadow) : "—"));
  const names = [deployment.champion_model_version_id, deployment.shadow_model_version_id].map((id) => (id ? nameOf(modelVersions, id) : "—"));
  document.querySelector("#comparison tbody").replaceChildren(
    el("tr", {}, el("th", {}, "Model version"), el("td", {}, names[0]), el("td", {}, names[1])),
    line(`Predictions (of the last ${window})`, (r) => String(r?.predictions ?? 0)),
    line("Latency p50", (r) => `${number(r?.latency_p50_ms, 2)} ms`),
    line("Latency p95", (r) => `${number(r?.latency_p95_ms, 2)} ms`),
    ...metrics.map((m) => line(metricName(m, metrics), (r) => number(r?.quality[m], m === "reviewed" ? 0 : 3))),
    el("tr", {}, el("th", {}, "Agreement"), el("td", { colspan: 2, id: "agreement" }, number(agreement, 3))),
  );
  document.getElementById("promote").disabled = !deployment.shadow_model_version_id;
}

// What the gate decided, newest first; a rollback or promotion stands out from the holds.
const GATE_STATES = { promoted: "on", kept: "on", rolled_back: "failed", watching: "running", held: "pending" };

async function showGate() {
  const decisions = await api("GET", `${base}/gate-decisions?limit=10`);
  document.querySelector("#gate tbody").replaceChildren(
    ...decisions.map(({ decision, decided_at, champion_model_version_id, shadow_model_version_id }) =>
      el(
        "tr",
        {},
        el("td", {}, when(decided_at)),
        el("td", {}, badge(decision.outcome.replaceAll("_", " "), GATE_STATES[decision.outcome])),
        el("td", {}, nameOf(modelVersions, champion_model_version_id)),
        el("td", {}, nameOf(modelVersions, shadow_model_version_id)),
        el("td", {}, String(decision.pairs)),
        el("td", {}, decision.p_value !== null && decision.p_value < 1e-3 ? decision.p_value.toExponential(1) : number(decision.p_value, 3)),
        el("td", {}, decision.message),
      ),
    ),
  );
}

async function load() {
  [datasetVersions, modelVersions] = await Promise.all([datasetVersionChoices(), modelVersionChoices()]);
  const deployment = await api("GET", base);
  await showSettings(deployment);
  await showComparison(deployment);
  await showGate();
  const { items } = await api("GET", "/v1/jobs?limit=10");
  jobRows(document.querySelector("#jobs tbody"), items);
}

// A change outside a form (detach, toggle, promote): said once done, or its refusal said on top.
function act(call, done) {
  call()
    .then(() => load())
    .then(() => say(done))
    .catch((error) => say(error.message, true));
}

// A settings form: its call on submit (told which button submitted it), the refusal shown inside it;
// `done` is what to say once saved, or makes it from the button and the API's answer.
function onSubmit(id, call, done) {
  const form = document.getElementById(id);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const button = event.submitter?.name ?? "save";
    attempt(form, async () => {
      const answer = await call(form, button);
      await load();
      say(typeof done === "function" ? done(button, answer) : done);
    }).catch((error) => say(error.message, true));
  });
}

function continuousTraining(form, button) {
  const dataset_versions = {};
  for (const line of document.querySelectorAll("#ct-dataset-versions .row")) {
    dataset_versions[line.querySelector("[name=alias]").value.trim()] = line.querySelector("select").value || null;
  }
  const training_parameters = {};
  for (const line of document.querySelectorAll("#ct-parameters .row")) {
    const name = line.querySelector("[name=parameter]").value.trim();
    if (name) training_parameters[name] = parsed(line.querySelector("[name=value]").value.trim());
  }
  const threshold = form.elements.threshold.value;
  const active = button === "activate" || document.getElementById("ct-toggle").dataset.active === "true";
  return api("PUT", `${base}/continuous-training`, {
    dataset_versions,
    training_parameters,
    threshold: threshold === "" ? null : Number(threshold),
    // Text that is not JSON goes as it is, and the api's 422 names body.policy.
    policy: form.elements.policy.value.trim() ? parsed(form.elements.policy.value.trim()) : {},
    active,
  });
}

function continuousDeployment(form, button) {
  const active = button === "activate" || document.getElementById("cd-toggle").dataset.active === "true";
  return api("PUT", `${base}/continuous-deployment`, { policy: form.elements.policy.value, active });
}

const saved = (what) => (button) => (button === "activate" ? `${what} saved and activated.` : `${what} saved.`);

async function page() {
  onSubmit("training-data-form", (form) => api("PUT", `${base}/training-data`, { dataset_version_id: form.elements.dataset_version_id.value || null }), (_, answer) => `Training data saved: its reference is ${answer.status}.`);
  onSubmit("feedback-loop-form", (form) => api("PUT", `${base}/feedback-loop/${form.elements.dataset_version_id.value || "none"}`), "Attached to the feedback loop.");
  onSubmit("continuous-training-form", continuousTraining, saved("Continuous training"));
  onSubmit("continuous-deployment-form", continuousDeployment, saved("Continuous deployment"));
  onSubmit("threshold-form", (form) => api("PUT", `${base}/threshold`, { confidence_threshold: Number(form.elements.confidence_threshold.value) }), "Confidence threshold saved.");
  onSubmit("shadow-form", (form) => api("PUT", `${base}/shadow`, { model_version_id: form.elements.model_version_id.value || null }), "Shadow set.");
  document.getElementById("ct-add-dataset-version").addEventListener("click", () => datasetVersionRow());
  document.getElementById("ct-add-parameter").addEventListener("click", () => parameterRow());
  for (const [id, part] of [["ct-toggle", "continuous-training"], ["cd-toggle", "continuous-deployment"]]) {
    const toggle = document.getElementById(id);
    toggle.addEventListener("click", () => {
      const active = toggle.dataset.active !== "true";
      act(() => api("PATCH", `${base}/${part}`, { active }), active ? "Activated." : "Deactivated.");
    });
  }
  document.getElementById("remove-shadow").addEventListener("click", () => act(() => api("DELETE", `${base}/shadow`), "Shadow removed."));
  document.getElementById("promote").addEventListener("click", async () => {
    try {
      const deployment = await api("POST", `${base}/shadow/promote`);
      await load();
      say(`Promoted: ${nameOf(modelVersions, deployment.champion_model_version_id)} is the champion.`);
    } catch (error) {
      say(error.message, true);
    }
  });
  await load();
}

start(page);
