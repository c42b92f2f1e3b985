// One job: its runs, the latest run's log lines polled while the run goes on, and a re-run once it has
// finished.
import { api, badge, el, facts, followLogs, number, say, start, vocabulary, when } from "./common.js";

const jobId = document.querySelector("h1").dataset.job;
const logs = document.getElementById("logs");

function showJob(job) {
  document.querySelector("h1").textContent = `${job.kind} job`;
  // The API refuses a re-run while a run is pending or running.
  const { SUCCEEDED, FAILED } = vocabulary.RunStatus;
  document.getElementById("rerun").disabled = ![SUCCEEDED, FAILED].includes(job.latest_run?.status);
  facts(document.getElementById("job"), [
    ["Target", `${job.target_type} ${job.target_id}`],
    ["Created", when(job.created_at)],
    ["Parameters", JSON.stringify(job.parameters)],
  ]);
  document.querySelector("#runs tbody").replaceChildren(
    ...job.runs.map((run) =>
      el(
        "tr",
        {},
        el("td", {}, String(run.attempt)),
        el("td", {}, badge(run.status, run.status)),
        el("td", {}, when(run.started_at)),
        el("td", {}, when(run.finished_at)),
        el("td", {}, run.duration_s == null ? "—" : `${number(run.duration_s, 1)} s`),
        el("td", {}, run.reason ?? ""),
      ),
    ),
  );
}

function follow() {
  return followLogs(jobId, logs, document.getElementById("log-state"), async () => showJob(await api("GET", `/v1/jobs/${jobId}`)));
}

async function rerun() {
  document.getElementById("rerun").disabled = true;
  const run = await api("POST", `/v1/jobs/${jobId}/rerun`);
  say(`Run ${run.attempt} requested.`);
  logs.replaceChildren();
  showJob(await api("GET", `/v1/jobs/${jobId}`));
  await follow();
}

async function page() {
  document.getElementById("rerun").addEventListener("click", () => rerun().catch((error) => say(error.message, true)));
  const job = await api("GET", `/v1/jobs/${jobId}`);
  showJob(job);
  if (job.runs.length) await follow();
}

start(page);
