// The project's processings: registered from a form, launched on a model version with a form built from
// the processing's parameter schema, and the launched run's log lines followed live.
import { api, ApiError, attempt, el, followLogs, modelVersionChoices, options, prefix, say, start } from "./common.js";

let processings = [];
const launchForm = document.getElementById("launch-form");

// One input per property of the schema: a choice for an enum, a checkbox for a boolean, a number for a
// number, text otherwise; the schema's default filled in, the required ones marked.
function parameterField(name, property, required) {
  const field = `body.parameters.${name}`;
  let input;
  if (Array.isArray(property.enum)) {
    input = el("select", { name, "data-field": field, "data-kind": "enum" });
    options(input, property.enum.map((v) => [JSON.stringify(v), String(v)]), JSON.stringify(property.default));
  } else if (property.type === "boolean") {
    input = el("input", { type: "checkbox", name, "data-field": field, "data-kind": "boolean", checked: property.default === true });
  } else if (property.type === "integer" || property.type === "number") {
    const step = property.type === "integer" ? "1" : "any";
    input = el("input", { type: "number", step, name, "data-field": field, "data-kind": "number", value: property.default });
  } else {
    input = el("input", { name, "data-field": field, "data-kind": "text", value: property.default });
  }
  const label = `${name}${required ? " *" : ""}`;
  return el("label", { class: "parameter" }, label, input, property.description ? el("span", { class: "hint" }, property.description) : null);
}

function showParameters() {
  const processing = processings.find((p) => p.id === launchForm.elements.processing_id.value);
  const schema = processing?.parameters_schema ?? {};
  const required = new Set(schema.required ?? []);
  const fields = Object.entries(schema.properties ?? {}).map(([name, property]) => parameterField(name, property, required.has(name)));
  document.getElementById("processing-description").textContent = processing?.description ?? "";
  document.getElementById("parameters").replaceChildren(el("legend", {}, "Parameters"), ...(fields.length ? fields : [el("p", { class: "hint" }, "none")]));
}

// The parameters as the form holds them; an empty optional field is left out.
function parameters() {
  const values = {};
  for (const input of document.querySelectorAll("#parameters [data-kind]")) {
    const kind = input.dataset.kind;
    if (kind === "boolean") values[input.name] = input.checked;
    else if (kind === "enum") values[input.name] = JSON.parse(input.value);
    else if (input.value !== "") values[input.name] = kind === "number" ? Number(input.value) : input.value;
  }
  return values;
}

async function load() {
  ({ items: processings } = await api("GET", "/v1/processings?limit=500"));
  document.querySelector("#processings tbody").replaceChildren(
    ...processings.map((p) =>
      el(
        "tr",
        { "data-processing": p.id },
        el("td", {}, p.name),
        el("td", {}, p.description),
        el("td", {}, el("code", {}, p.image ?? p.command.join(" "))),
        el("td", {}, Object.keys(p.parameters_schema.properties ?? {}).join(", ") || "—"),
      ),
    ),
  );
  const chosen = launchForm.elements.processing_id.value;
  options(launchForm.elements.processing_id, processings.map((p) => [p.id, p.name]), chosen);
  showParameters();
}

async function launch() {
  const modelVersion = launchForm.elements.model_version_id.value;
  const body = { processing_id: launchForm.elements.processing_id.value, parameters: parameters() };
  const job = await api("POST", `/v1/model-versions/${modelVersion}/processings`, body);
  say("Processing launched.");
  const link = document.getElementById("launched-job");
  link.href = `${prefix}/jobs/${job.id}`;
  link.textContent = `processing job ${job.id.slice(0, 8)}`;
  const logs = document.getElementById("logs");
  logs.replaceChildren();
  document.getElementById("launched").hidden = false;
  await followLogs(job.id, logs, document.getElementById("log-state"), async () => {});
}

function registered(form) {
  const text = (name) => form.elements[name].value.trim();
  let schema = {};
  if (text("parameters_schema")) {
    try {
      schema = JSON.parse(text("parameters_schema"));
    } catch (error) {
      throw new ApiError(error.message, [{ field: "body.parameters_schema", message: `not JSON: ${error.message}` }]);
    }
  }
  const command = text("command").split("\n").map((a) => a.trim()).filter(Boolean);
  return {
    name: text("name"),
    description: text("description"),
    command: command.length ? command : null,
    image: text("image") || null,
    parameters_schema: schema,
  };
}

async function page() {
  launchForm.elements.processing_id.addEventListener("change", showParameters);
  launchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(launchForm, launch).catch((error) => say(error.message, true));
  });
  const createForm = document.getElementById("create-form");
  createForm.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(createForm, async () => {
      const processing = await api("POST", "/v1/processings", registered(createForm));
      createForm.reset();
      await load();
      launchForm.elements.processing_id.value = processing.id;
      showParameters();
      say(`Registered ${processing.name}.`);
    }).catch((error) => say(error.message, true));
  });
  options(launchForm.elements.model_version_id, await modelVersionChoices());
  await load();
}

start(page);
