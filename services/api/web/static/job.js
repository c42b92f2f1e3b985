// One job: its runs, and the latest run's log lines, polled while the run goes on.
import { api, badge, el, facts, number, say, start, when } from "./common.js";

const POLL_MS = 1000;
const jobId = document.querySelector("h1").dataset.job;
const logs = document.getElementById("logs");

function showJob(job) {
  document.querySelector("h1").textContent = `${job.kind} job`;
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

// Asks for the lines after the last one shown until the run has finished.
async function follow(after = -1) {
  const answer = await api("GET", `/v1/jobs/${jobId}/logs?after=${after}`);
  logs.append(...answer.lines.map((line) => `${line.text}\n`));
  const last = answer.lines.length ? answer.lines.at(-1).number : after;
  const state = document.getElementById("log-state");
  state.textContent = answer.finished ? "finished" : "live";
  state.className = `badge ${answer.finished ? "off" : "on"}`;
  if (answer.finished) {
    showJob(await api("GET", `/v1/jobs/${jobId}`));
    return;
  }
  setTimeout(() => follow(last).catch((error) => say(error.message, true)), POLL_MS);
}

async function page() {
  const job = await api("GET", `/v1/jobs/${jobId}`);
  showJob(job);
  if (job.runs.length) await follow();
}

start(page);
