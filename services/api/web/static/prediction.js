// One predicted asset: its image with the shapes drawn, champion / shadow / review toggle, the review
// editor (class for classification; move, resize, delete and add boxes for detection), mark reviewed.
import { api, badge, el, facts, number, prefix, say, start, summary, topClass, vocabulary, when } from "./common.js";

const SVG = "http://www.w3.org/2000/svg";
const HANDLE = 0.06; // resize handle, as a fraction of the image's longer side
const predictionId = document.querySelector(".asset").dataset.prediction;
const svg = document.getElementById("shapes");
const image = document.getElementById("image");

let asset; // the answer of GET /v1/predictions/{id}
let labels = []; // the champion's labelmap
let draft; // the review being edited: a prediction of the deployment's type
let shown = "champion"; // champion | shadow | review
let selectedBox = -1;

function shape(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

function predictionShown() {
  return { champion: asset.champion_prediction, shadow: asset.shadow_prediction, review: draft }[shown];
}

function draw() {
  const prediction = predictionShown();
  const editable = shown === "review" && draft.type === "detection";
  const handle = HANDLE * Math.max(asset.width, asset.height);
  svg.replaceChildren();
  svg.classList.toggle("editable", editable);
  (prediction.boxes ?? []).forEach(([x0, y0, x1, y1], i) => {
    const group = shape("g", { class: `box ${i === selectedBox && editable ? "selected" : ""}`, "data-index": i });
    group.append(shape("rect", { x: x0, y: y0, width: x1 - x0, height: y1 - y0, class: "outline" }));
    const label = shape("text", { x: x0, y: Math.max(y0 - handle / 3, handle), class: "label", "font-size": handle });
    label.textContent = prediction.classes[i];
    group.append(label);
    if (editable) {
      group.append(shape("rect", { x: x1 - handle, y: y1 - handle, width: handle, height: handle, class: "handle" }));
    }
    svg.append(group);
  });
  (prediction.polygons ?? []).forEach((points, i) => {
    svg.append(shape("polygon", { points: points.map((p) => p.join(",")).join(" "), class: "outline", "data-index": i }));
  });
  for (const role of ["champion", "shadow", "review"]) {
    document.getElementById(`show-${role}`).setAttribute("aria-pressed", String(role === shown));
  }
  document.getElementById("shown-caption").textContent = `${shown}: ${summary(prediction)}`;
  renderBoxList();
}

function renderBoxList() {
  if (draft.type !== "detection") return;
  const list = document.getElementById("box-list");
  list.replaceChildren(
    ...draft.boxes.map((box, i) =>
      el("li", { class: i === selectedBox ? "selected" : "" }, `${draft.classes[i]} [${box.map((v) => v.toFixed(0)).join(", ")}]`),
    ),
  );
  document.getElementById("delete-box").disabled = selectedBox < 0;
  document.getElementById("box-class").value = draft.classes[selectedBox] ?? labels[0];
}

function showRole(role) {
  shown = role;
  draw();
}

// Editing always works on the review draft: it starts from the prediction on screen.
function editDraft() {
  if (shown !== "review") {
    draft = structuredClone(predictionShown());
    shown = "review";
  }
}

function imagePoint(event) {
  const rect = svg.getBoundingClientRect();
  const x = ((event.clientX - rect.left) / rect.width) * asset.width;
  const y = ((event.clientY - rect.top) / rect.height) * asset.height;
  return [Math.min(Math.max(x, 0), asset.width), Math.min(Math.max(y, 0), asset.height)];
}

// Pointer gestures on the image: drag a box (move), its handle (resize) or empty space (a new box).
function startGesture(event) {
  if (draft.type !== "detection") return;
  editDraft();
  const [px, py] = imagePoint(event);
  const target = event.target.closest("g.box");
  let index = target ? Number(target.dataset.index) : -1;
  let mode = target ? (event.target.classList.contains("handle") ? "resize" : "move") : "draw";
  if (mode === "draw") {
    draft.boxes.push([px, py, px, py]);
    draft.classes.push(document.getElementById("box-class").value || labels[0]);
    draft.scores.push(1);
    index = draft.boxes.length - 1;
    mode = "resize";
  }
  selectedBox = index;
  const start = [...draft.boxes[index]];
  svg.setPointerCapture(event.pointerId);
  const onMove = (move) => {
    const [mx, my] = imagePoint(move);
    const [x0, y0, x1, y1] = start;
    if (mode === "move") {
      const dx = Math.min(Math.max(mx - px, -x0), asset.width - x1);
      const dy = Math.min(Math.max(my - py, -y0), asset.height - y1);
      draft.boxes[index] = [x0 + dx, y0 + dy, x1 + dx, y1 + dy];
    } else {
      draft.boxes[index] = [Math.min(x0, mx), Math.min(y0, my), Math.max(x0, mx), Math.max(y0, my)];
    }
    draw();
  };
  const onUp = () => {
    svg.removeEventListener("pointermove", onMove);
    svg.removeEventListener("pointerup", onUp);
    const [x0, y0, x1, y1] = draft.boxes[index];
    if (x1 - x0 < 1 || y1 - y0 < 1) removeBox(index); // a click, not a box
    draw();
  };
  svg.addEventListener("pointermove", onMove);
  svg.addEventListener("pointerup", onUp);
  draw();
}

function removeBox(index) {
  for (const field of ["boxes", "classes", "scores"]) draft[field].splice(index, 1);
  selectedBox = -1;
}

function showFacts() {
  facts(document.getElementById("facts"), [
    ["Status", badge(asset.status.replace("_", " "), asset.status.toLowerCase())],
    ["Outlier score", number(asset.outlier_score, 3)],
    ["Size", `${asset.width} × ${asset.height}`],
    ["Champion", `${summary(asset.champion_prediction)} · ${number(asset.champion_latency_ms, 2)} ms`],
    ["Shadow", asset.shadow_prediction ? `${summary(asset.shadow_prediction)} · ${number(asset.shadow_latency_ms, 2)} ms` : asset.shadow_error ?? "—"],
    ["Source", asset.source],
    ["Tags", asset.tags.join(", ") || "—"],
    ["Logged", when(asset.created_at)],
    ["Reviewed", asset.reviewed_at ? `${when(asset.reviewed_at)} by ${asset.reviewed_by}` : "—"],
    ["Submitted", asset.submitted_at ? when(asset.submitted_at) : "—"],
  ]);
  document.getElementById("mark-reviewed").disabled = asset.status === vocabulary.ReviewStatus.SUBMITTED;
  document.getElementById("show-shadow").disabled = !asset.shadow_prediction;
}

async function markReviewed() {
  editDraft();
  asset = await api("PUT", `/v1/predictions/${predictionId}/review`, { review: draft });
  say(`Reviewed: ${summary(asset.review)}.`);
  showFacts();
  draw();
}

async function loadLabels(deployment) {
  const champion = await api("GET", `/v1/model-versions/${deployment.champion_model_version_id}`);
  if (champion.labelmap_id) labels = (await api("GET", `/v1/labelmaps/${champion.labelmap_id}`)).labels;
  const options = () => labels.map((label) => el("option", { value: label }, label));
  document.getElementById("class-choice").replaceChildren(...options());
  document.getElementById("box-class").replaceChildren(...options());
}

async function page() {
  asset = await api("GET", `/v1/predictions/${predictionId}`);
  const deployment = await api("GET", `/v1/deployments/${asset.deployment_id}`);
  document.getElementById("back").href = `${prefix}/deployments/${deployment.id}`;
  document.querySelector("h1").textContent = `${deployment.name} · predicted asset`;
  await loadLabels(deployment);
  draft = structuredClone(asset.review ?? asset.champion_prediction);
  shown = asset.review ? "review" : "champion";
  image.src = asset.image_url;
  svg.setAttribute("viewBox", `0 0 ${asset.width} ${asset.height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const scale = 384 / Math.max(asset.width, asset.height);
  image.style.width = svg.style.width = `${asset.width * scale}px`;
  image.style.height = svg.style.height = `${asset.height * scale}px`;

  for (const role of ["champion", "shadow", "review"]) {
    document.getElementById(`show-${role}`).addEventListener("click", () => showRole(role));
  }
  const classChoice = document.getElementById("class-choice");
  document.getElementById("classification-editor").hidden = draft.type !== "classification";
  document.getElementById("detection-editor").hidden = draft.type !== "detection";
  if (draft.type === "classification") {
    classChoice.value = topClass(draft) ?? labels[0];
    classChoice.addEventListener("change", () => {
      draft = { type: "classification", classes: [classChoice.value], scores: [1] };
      shown = "review";
      draw();
    });
  }
  if (draft.type === "detection") {
    svg.addEventListener("pointerdown", startGesture);
    document.getElementById("box-class").addEventListener("change", (event) => {
      if (selectedBox < 0) return;
      editDraft();
      draft.classes[selectedBox] = event.target.value;
      draw();
    });
    const deleteSelected = () => {
      editDraft();
      if (selectedBox >= 0) removeBox(selectedBox);
      draw();
    };
    document.getElementById("delete-box").addEventListener("click", deleteSelected);
    document.addEventListener("keydown", (event) => {
      if (event.key === "Delete" && !["INPUT", "SELECT", "TEXTAREA"].includes(event.target.tagName)) deleteSelected();
    });
  }
  document.getElementById("mark-reviewed").addEventListener("click", () =>
    markReviewed().catch((error) => say(error.message, true)),
  );
  showFacts();
  draw();
}

start(page);
