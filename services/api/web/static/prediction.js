// One predicted asset: its image with the shapes drawn, champion / shadow / review toggle, the review
// editor (class for classification; move, resize, delete and add boxes for detection; move points and
// shapes, add points, add and delete polygons for segmentation; a shape's class), mark reviewed.
import { api, badge, el, facts, number, prefix, say, start, summary, topClass, vocabulary, when } from "./common.js";

const SVG = "http://www.w3.org/2000/svg";
const HANDLE = 0.06; // resize handle and point, as a fraction of the image's longer side
const SHAPES = { detection: "boxes", segmentation: "polygons" }; // the field of a type's shapes
const HINTS = {
  detection: "Drag a box to move it, its corner to resize it; draw on the image to add one; Delete removes the selected box.",
  segmentation:
    "Drag a point to move it, a shape to move it whole; double-click an edge to add a point there; draw on the image to add a shape; Delete removes the selected shape.",
};
const predictionId = document.querySelector(".asset").dataset.prediction;
const svg = document.getElementById("shapes");
const image = document.getElementById("image");

let asset; // the answer of GET /v1/predictions/{id}
let labels = []; // the champion's labelmap
let draft; // the review being edited: a prediction of the deployment's type
let shown = "champion"; // champion | shadow | review
let selected = -1; // the selected shape's index in the draft
let lastPress = null; // the last press on a shape ({time, index, x, y}): a second one soon after is a double click
const DOUBLE_CLICK_MS = 500;

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
  const editable = shown === "review" && draft.type in SHAPES;
  const handle = HANDLE * Math.max(asset.width, asset.height);
  svg.replaceChildren();
  svg.classList.toggle("editable", editable);
  const group = (i, outline, [x0, y0]) => {
    const g = shape("g", { class: `shape ${i === selected && editable ? "selected" : ""}`, "data-index": i });
    g.append(outline);
    const label = shape("text", { x: x0, y: Math.max(y0 - handle / 3, handle), class: "label", "font-size": handle });
    label.textContent = prediction.classes[i];
    g.append(label);
    svg.append(g);
    return g;
  };
  (prediction.boxes ?? []).forEach(([x0, y0, x1, y1], i) => {
    const g = group(i, shape("rect", { x: x0, y: y0, width: x1 - x0, height: y1 - y0, class: "outline" }), [x0, y0]);
    if (editable) {
      g.append(shape("rect", { x: x1 - handle, y: y1 - handle, width: handle, height: handle, class: "handle" }));
    }
  });
  (prediction.polygons ?? []).forEach((points, i) => {
    const outline = shape("polygon", { points: points.map((p) => p.join(",")).join(" "), class: "outline" });
    const top = points.reduce((a, b) => (b[1] < a[1] ? b : a));
    const g = group(i, outline, top);
    if (editable) {
      points.forEach(([x, y], j) => g.append(shape("circle", { cx: x, cy: y, r: handle / 2, class: "point", "data-point": j })));
    }
  });
  for (const role of ["champion", "shadow", "review"]) {
    document.getElementById(`show-${role}`).setAttribute("aria-pressed", String(role === shown));
  }
  document.getElementById("shown-caption").textContent = `${shown}: ${summary(prediction)}`;
  renderShapeList();
}

function describe(shapeValue) {
  if (draft.type === "detection") return `[${shapeValue.map((v) => v.toFixed(0)).join(", ")}]`;
  return `${shapeValue.length} points`;
}

function renderShapeList() {
  if (!(draft.type in SHAPES)) return;
  const list = document.getElementById("shape-list");
  list.replaceChildren(
    ...draft[SHAPES[draft.type]].map((value, i) =>
      el("li", { class: i === selected ? "selected" : "" }, `${draft.classes[i]} ${describe(value)}`),
    ),
  );
  document.getElementById("delete-shape").disabled = selected < 0;
  document.getElementById("shape-class").value = draft.classes[selected] ?? labels[0];
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

const clamp = (value, low, high) => Math.min(Math.max(value, low), high);

// A shape dragged from (px, py) to (mx, my): moved whole, resized (a box's corner, or the rectangle a new
// polygon starts as) or one polygon point moved; kept inside the image.
function dragged(start, mode, point, [px, py], [mx, my]) {
  if (draft.type === "detection") {
    const [x0, y0, x1, y1] = start;
    if (mode === "move") {
      const dx = clamp(mx - px, -x0, asset.width - x1);
      const dy = clamp(my - py, -y0, asset.height - y1);
      return [x0 + dx, y0 + dy, x1 + dx, y1 + dy];
    }
    return [Math.min(x0, mx), Math.min(y0, my), Math.max(x0, mx), Math.max(y0, my)];
  }
  if (mode === "point") return start.map((p, j) => (j === point ? [mx, my] : p));
  if (mode === "move") {
    const xs = start.map((p) => p[0]);
    const ys = start.map((p) => p[1]);
    const dx = clamp(mx - px, -Math.min(...xs), asset.width - Math.max(...xs));
    const dy = clamp(my - py, -Math.min(...ys), asset.height - Math.max(...ys));
    return start.map(([x, y]) => [x + dx, y + dy]);
  }
  const [x0, y0] = start[0];
  return [[x0, y0], [mx, y0], [mx, my], [x0, my]];
}

// A shape too small to be one (a click on empty space, not a drag).
function tiny(value) {
  const points = draft.type === "detection" ? [value.slice(0, 2), value.slice(2)] : value;
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  return Math.max(...xs) - Math.min(...xs) < 1 || Math.max(...ys) - Math.min(...ys) < 1;
}

// Pointer gestures on the image: drag a shape (move), a box's handle (resize), a polygon's point (move
// it) or empty space (a new shape).
function startGesture(event) {
  editDraft();
  draw(); // the review's handles and points: the gesture acts on what is under the pointer now
  const under = document.elementFromPoint(event.clientX, event.clientY);
  const field = SHAPES[draft.type];
  const from = imagePoint(event);
  const target = under?.closest("g.shape");
  let index = target ? Number(target.dataset.index) : -1;
  const classes = under?.classList;
  let mode = !target ? "draw" : classes.contains("handle") ? "resize" : classes.contains("point") ? "point" : "move";
  const point = Number(under?.dataset.point);
  // A double click on a polygon: a point added there. Every press redraws the shapes, so the browser's own
  // dblclick (which needs both presses on one node) never comes.
  const previous = lastPress;
  lastPress = target ? { time: event.timeStamp, index, x: event.clientX, y: event.clientY } : null;
  const double =
    previous?.index === index &&
    event.timeStamp - previous.time < DOUBLE_CLICK_MS &&
    Math.hypot(event.clientX - previous.x, event.clientY - previous.y) < 4;
  if (double && mode === "move" && field === "polygons") {
    addPoint(index, from);
    lastPress = null;
    return;
  }
  if (mode === "draw") {
    draft[field].push(field === "boxes" ? [...from, ...from] : [from, from, from, from]);
    draft.classes.push(document.getElementById("shape-class").value || labels[0]);
    draft.scores.push(1);
    index = draft[field].length - 1;
    mode = "resize";
  }
  selected = index;
  const start = structuredClone(draft[field][index]);
  svg.setPointerCapture(event.pointerId);
  const onMove = (move) => {
    draft[field][index] = dragged(start, mode, point, from, imagePoint(move));
    draw();
  };
  const onUp = () => {
    svg.removeEventListener("pointermove", onMove);
    svg.removeEventListener("pointerup", onUp);
    if (tiny(draft[field][index])) removeShape(index); // a click, not a shape
    draw();
  };
  svg.addEventListener("pointermove", onMove);
  svg.addEventListener("pointerup", onUp);
  draw();
}

// A point added on the polygon's edge nearest to (x, y).
function addPoint(index, [x, y]) {
  const points = draft.polygons[index];
  const distance = (j) => {
    const [ax, ay] = points[j];
    const [bx, by] = points[(j + 1) % points.length];
    const length = (bx - ax) ** 2 + (by - ay) ** 2;
    const t = length ? clamp(((x - ax) * (bx - ax) + (y - ay) * (by - ay)) / length, 0, 1) : 0;
    return Math.hypot(x - (ax + t * (bx - ax)), y - (ay + t * (by - ay)));
  };
  const nearest = points.map((_, j) => j).reduce((a, b) => (distance(b) < distance(a) ? b : a));
  points.splice(nearest + 1, 0, [x, y]);
  selected = index;
  draw();
}

function removeShape(index) {
  for (const field of [SHAPES[draft.type], "classes", "scores"]) draft[field].splice(index, 1);
  selected = -1;
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
  document.getElementById("shape-class").replaceChildren(...options());
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
  document.getElementById("shape-editor").hidden = !(draft.type in SHAPES);
  if (draft.type === "classification") {
    classChoice.value = topClass(draft) ?? labels[0];
    classChoice.addEventListener("change", () => {
      draft = { type: "classification", classes: [classChoice.value], scores: [1] };
      shown = "review";
      draw();
    });
  }
  if (draft.type in SHAPES) {
    document.getElementById("shape-hint").textContent = HINTS[draft.type];
    svg.addEventListener("pointerdown", startGesture);
    document.getElementById("shape-class").addEventListener("change", (event) => {
      if (selected < 0) return;
      editDraft();
      draft.classes[selected] = event.target.value;
      draw();
    });
    const deleteSelected = () => {
      editDraft();
      if (selected >= 0) removeShape(selected);
      draw();
    };
    document.getElementById("delete-shape").addEventListener("click", deleteSelected);
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
