// What every page shares: the API key, calls to the JSON API, small DOM helpers.
const KEY = "cvloop-api-key";
export const prefix = document.body.dataset.prefix;
// The server's vocabulary (schemas/vocabulary.py), rendered into the page: enum name -> member -> value.
export const vocabulary = JSON.parse(document.getElementById("vocabulary").textContent);

export function apiKey() {
  return localStorage.getItem(KEY);
}

export class ApiError extends Error {}

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
  if (!response.ok) throw new ApiError(`${response.status}: ${answer?.detail ?? response.statusText}`);
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
