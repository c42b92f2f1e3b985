// A deployment's pipeline settings, champion against shadow with the promote button, its jobs.
import { api, badge, el, facts, jobRows, number, pipelineBadges, say, start } from "./common.js";

const deploymentId = document.getElementById("deployment-name").dataset.deployment;
const METRIC_NAMES = { accuracy: "Accuracy", ap: "AP", ap50: "AP50", ar: "AR", reviewed: "Reviewed" };

function onOff(active) {
  return badge(active ? "active" : "inactive", active ? "on" : "off");
}

async function datasetVersionName(id) {
  const version = await api("GET", `/v1/dataset-versions/${id}`);
  const dataset = await api("GET", `/v1/datasets/${version.dataset_id}`);
  return `${dataset.name} · ${version.version}`;
}

async function showSettings(deployment) {
  document.getElementById("deployment-name").textContent = `${deployment.name} · pipeline`;
  document.getElementById("badges").replaceChildren(...pipelineBadges(deployment));
  const data = deployment.training_data;
  facts(document.getElementById("training-data"), [
    ["Dataset version", data.dataset_version_id ? await datasetVersionName(data.dataset_version_id) : "not set"],
    ["Reference", data.status],
    ["Reason", data.reason],
  ]);
  const loop = await Promise.all(deployment.feedback_loop.dataset_version_ids.map(datasetVersionName));
  document.getElementById("feedback-loop").replaceChildren(...(loop.length ? loop : ["none attached"]).map((n) => el("li", {}, n)));
  const ct = deployment.continuous_training;
  const aliases = await Promise.all(
    Object.entries(ct.dataset_versions).map(async ([alias, id]) => `${alias}: ${await datasetVersionName(id)}`),
  );
  facts(document.getElementById("continuous-training"), [
    ["State", onOff(ct.active)],
    ["Threshold", ct.threshold],
    ["Submitted since training", el("span", { id: "submitted-since-training" }, String(ct.submitted_since_training))],
    ["Dataset versions", aliases.join("; ") || "—"],
    ["Training parameters", Object.entries(ct.training_parameters).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ") || "—"],
  ]);
  const cd = deployment.continuous_deployment;
  facts(document.getElementById("continuous-deployment"), [
    ["State", onOff(cd.active)],
    ["Policy", cd.policy.replace("_", " ")],
  ]);
}

async function versionName(id) {
  if (!id) return "—";
  const version = await api("GET", `/v1/model-versions/${id}`);
  const model = await api("GET", `/v1/models/${version.model_id}`);
  return `${model.name} ${version.version}`;
}

async function showComparison(deployment) {
  const { champion, shadow, agreement, window } = await api("GET", `/v1/deployments/${deploymentId}/comparison`);
  const metrics = [...new Set([...Object.keys(champion?.quality ?? {}), ...Object.keys(shadow?.quality ?? {})])];
  const row = (name, value) => el("tr", {}, el("th", {}, name), el("td", {}, value(champion)), el("td", {}, shadow ? value(shadow) : "—"));
  const names = await Promise.all([versionName(deployment.champion_model_version_id), versionName(deployment.shadow_model_version_id)]);
  document.querySelector("#comparison tbody").replaceChildren(
    el("tr", {}, el("th", {}, "Model version"), el("td", {}, names[0]), el("td", {}, names[1])),
    row(`Predictions (of the last ${window})`, (r) => String(r?.predictions ?? 0)),
    row("Latency p50", (r) => `${number(r?.latency_p50_ms, 2)} ms`),
    row("Latency p95", (r) => `${number(r?.latency_p95_ms, 2)} ms`),
    ...metrics.map((m) => row(METRIC_NAMES[m] ?? m, (r) => number(r?.quality[m], m === "reviewed" ? 0 : 3))),
    el("tr", {}, el("th", {}, "Agreement"), el("td", { colspan: 2, id: "agreement" }, number(agreement, 3))),
  );
  document.getElementById("promote").disabled = !deployment.shadow_model_version_id;
}

async function load() {
  const deployment = await api("GET", `/v1/deployments/${deploymentId}`);
  await showSettings(deployment);
  await showComparison(deployment);
  const { items } = await api("GET", "/v1/jobs?limit=10");
  jobRows(document.querySelector("#jobs tbody"), items);
}

async function promote() {
  const deployment = await api("POST", `/v1/deployments/${deploymentId}/shadow/promote`);
  say(`Promoted: ${await versionName(deployment.champion_model_version_id)} is the champion.`);
  await load();
}

async function page() {
  document.getElementById("promote").addEventListener("click", () => promote().catch((error) => say(error.message, true)));
  await load();
}

start(page);
