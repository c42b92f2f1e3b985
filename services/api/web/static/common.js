// What every page shares: the API key, calls to the JSON API, small DOM helpers.
const KEY = "cvloop-api-key";
export const prefix = document.body.dataset.prefix;
// The server's vocabulary (schemas/vocabulary.py), rendered into the page: enum name -> member -> value.
export const vocabulary = JSON.parse(document.getElementById("vocabulary").textContent);

export function apiKey() {
  return localStorage.getItem(KEY);
}

// The API's answer to a refused call: `errors` names each field at fault ({field, message}).
export class ApiError extends Error {
  constructor(message, errors = []) {
    super(message);
    this.errors = errors;
  }
}

// A call to the JSON API with the key; the API's own error detail becomes the message.
export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${apiKey()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = response.headers.get("content-type")?.startsWith("application/json");
  const answer = json ? await response.json() : null;
  if (!response.ok) {
    throw new ApiError(`${response.status}: ${answer?.detail ?? response.statusText}`, answer?.errors ?? []);
  }
  return answer;
}

export function say(text, isError = false) {
  const message = document.getElementById("message");
  message.textContent = text;
  message.hidden = !text;
  message.classList.toggle("error", isError);
}

// el("a", {href: "/x", class: "badge"}, "text", child...)
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value);
  }
  node.append(...children.filter((c) => c !== undefined && c !== null));
  return node;
}

export function facts(dl, pairs) {
  dl.replaceChildren(...pairs.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, value ?? "—")]));
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" }) : "—";
}

export function number(value, digits = 3) {
  return value === null || value === undefined ? "—" : Number(value).toFixed(digits);
}

export function badge(text, state) {
  return el("span", { class: `badge ${state}` }, text);
}

// Runs the page once a key is known; the key form stores it and reloads the page.
export function start(page) {
  const form = document.getElementById("key-form");
  const forget = document.getElementById("key-forget");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem(KEY, document.getElementById("key-input").value.trim());
    location.reload();
  });
  forget.addEventListener("click", () => {
    localStorage.removeItem(KEY);
    location.reload();
  });
  if (!apiKey()) {
    say("Enter an API key of your project to see its deployments.");
    return;
  }
  form.querySelector("input").hidden = true;
  form.querySelector("button[type=submit]").hidden = true;
  forget.hidden = false;
  page().catch((error) => say(error.message, true));
}

// The jobs table of the jobs page and of the pipeline page.
export function jobRows(tbody, jobs) {
  tbody.replaceChildren(
    ...jobs.map((job) => {
      const run = job.latest_run;
      return el(
        "tr",
        {},
        el("td", {}, el("a", { href: `${prefix}/jobs/${job.id}` }, job.kind)),
        el("td", {}, `${job.target_type} ${job.target_id.slice(0, 8)}`),
        el("td", {}, when(job.created_at)),
        el("td", {}, run ? badge(run.status, run.status) : "—"),
        el("td", {}, run?.duration_s == null ? "—" : `${number(run.duration_s, 1)} s`),
        el("td", {}, run?.reason ?? ""),
      );
    }),
  );
}

// What of a deployment's pipeline is set up, as badges.
export function pipelineBadges(deployment) {
  const trainingData = deployment.training_data.status;
  const { ReferenceStatus } = vocabulary;
  return [
    badge(
      trainingData === ReferenceStatus.READY ? "training data ready" : `training data ${trainingData ?? "not set"}`,
      trainingData === ReferenceStatus.READY ? "on" : trainingData === ReferenceStatus.FAILED ? "failed" : "off",
    ),
    badge("feedback loop", deployment.feedback_loop.dataset_version_ids.length ? "on" : "off"),
    badge("continuous training", deployment.continuous_training.active ? "on" : "off"),
    badge("continuous deployment", deployment.continuous_deployment.active ? "on" : "off"),
  ];
}

// The class a classification scores highest.
export function topClass(prediction) {
  const best = prediction.scores.indexOf(Math.max(...prediction.scores));
  return best < 0 ? null : prediction.classes[best];
}

// One line about a prediction: its top class, or how many shapes it has.
export function summary(prediction) {
  if (prediction.type === "classification") {
    const best = topClass(prediction);
    return best === null ? "no class" : `${best} (${number(Math.max(...prediction.scores), 2)})`;
  }
  const count = (prediction.boxes ?? prediction.polygons ?? []).length;
  const noun = prediction.type === "detection" ? "box" : "polygon";
  return `${count} ${noun}${count === 1 ? "" : noun === "box" ? "es" : "s"}`;
}

// An ISO time as a datetime-local input's value (local time, to the minute).
export function localInput(iso) {
  if (!iso) return "";
  const t = new Date(iso);
  return new Date(t.getTime() - t.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

// Runs a form's action: the API's refusal is shown inside the form, one line per field at fault, and the
// inputs it names (data-field="body.threshold") are marked invalid.
export async function attempt(form, action) {
  const problems = form.querySelector(".problems");
  problems.replaceChildren();
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  try {
    await action();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    const errors = error.errors.length ? error.errors : [{ field: "", message: error.message }];
    problems.replaceChildren(...errors.map((e) => el("li", {}, e.field ? `${e.field}: ${e.message}` : e.message)));
    for (const e of errors) {
      for (const input of form.querySelectorAll("[data-field]")) {
        if (e.field.startsWith(input.dataset.field)) input.setAttribute("aria-invalid", "true");
      }
    }
  }
}

// A select's options from [value, text] pairs, keeping `chosen` selected.
export function options(select, pairs, chosen) {
  select.replaceChildren(...pairs.map(([value, text]) => el("option", { value, selected: value === chosen }, text)));
}

// Every dataset version of the project as [id, "dataset · version"], for the settings' choices.
export async function datasetVersionChoices() {
  const { items: datasets } = await api("GET", "/v1/datasets?limit=500");
  const perDataset = await Promise.all(
    datasets.map(async (dataset) => {
      const { items } = await api("GET", `/v1/datasets/${dataset.id}/versions?limit=500`);
      return items.map((v) => [v.id, `${dataset.name} · ${v.version}`]);
    }),
  );
  return perDataset.flat();
}

// Every model version of the project as [id, "model version"].
export async function modelVersionChoices() {
  const { items: models } = await api("GET", "/v1/models?limit=500");
  const perModel = await Promise.all(
    models.map(async (model) => {
      const { items } = await api("GET", `/v1/models/${model.id}/versions?limit=500`);
      return items.map((v) => [v.id, `${model.name} ${v.version}`]);
    }),
  );
  return perModel.flat();
}

const POLL_MS = 1000;

// A job's latest run's log lines into `pre`, asking for those after the last one shown every second
// until the run has finished; `state` says live or finished, `finished` runs once it has.
export async function followLogs(jobId, pre, state, finished, after = -1) {
  const answer = await api("GET", `/v1/jobs/${jobId}/logs?after=${after}`);
  pre.append(...answer.lines.map((line) => `${line.text}\n`));
  const last = answer.lines.length ? answer.lines.at(-1).number : after;
  state.textContent = answer.finished ? "finished" : "live";
  state.className = `badge ${answer.finished ? "off" : "on"}`;
  if (answer.finished) {
    await finished();
    return;
  }
  setTimeout(() => followLogs(jobId, pre, state, finished, last).catch((error) => say(error.message, true)), POLL_MS);
}
