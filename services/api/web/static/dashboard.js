// A deployment's dashboard over the last 24 h, 7 d or 30 d, drawn from the monitoring API with uPlot
// (vendored, loaded by the page as the global `uPlot`): volume, latency, outlier scores, drift with its
// flagged windows (each a link to the review grid of that window, most outlying first), champion and
// shadow quality, the review backlog and the submissions toward the training threshold.
import { api, el, facts, number, prefix, say, start, vocabulary } from "./common.js";

const deploymentId = document.getElementById("deployment-name").dataset.deployment;
const base = `/v1/deployments/${deploymentId}`;
const HOUR = 3600;
const DAY = 24 * HOUR;
// Volume, latency and outlier rates per hour; quality per longer bucket, as reviews are fewer.
const RANGES = {
  "24h": { seconds: DAY, qualityBucket: HOUR },
  "7d": { seconds: 7 * DAY, qualityBucket: 6 * HOUR },
  "30d": { seconds: 30 * DAY, qualityBucket: DAY },
};
const LEVEL = 0.99;
const HISTOGRAM_BINS = 20;
const ROLE_COLORS = { champion: "#2563eb", shadow: "#d97706" };
const PALETTE = ["#2563eb", "#d97706", "#15803d", "#9333ea", "#db2777", "#0891b2", "#65a30d", "#b91c1c"];
const METRICS = { accuracy: "accuracy", ap: "AP", ar: "AR", mask_ap: "mask AP", mask_ar: "mask AR" };
const HEIGHT = 220;
let plots = []; // the charts of the range shown, destroyed when another range is chosen

function chosenRange() {
  const range = new URLSearchParams(location.search).get("range");
  return range in RANGES ? range : "24h";
}

const seconds = (iso) => Date.parse(iso) / 1000;

// [start, end) ending at the next full hour, so the hourly buckets are the clock's hours.
function period(range) {
  const end = Math.ceil(Date.now() / 1000 / HOUR) * HOUR;
  const from = end - RANGES[range].seconds;
  return { start: new Date(from * 1000).toISOString(), end: new Date(end * 1000).toISOString() };
}

// The bucket starts of a span the API answered: the x of a time chart.
function axis(span) {
  const xs = [];
  for (let t = seconds(span.start); t < seconds(span.end); t += span.bucket_s) xs.push(t);
  return xs;
}

// One value per bucket start; `missing` where the answer left the bucket out.
function column(xs, rows, value, missing = null) {
  const by = new Map(rows.map((row) => [seconds(row.start), value(row)]));
  return xs.map((x) => by.get(x) ?? missing);
}

// A chart in its box, or a line saying there is nothing to draw; `points` (the data points drawn) is
// kept on the box as data-points.
function chart(name, data, series, points, options = {}) {
  const box = document.querySelector(`[data-chart="${name}"]`);
  box.dataset.points = points;
  if (!points) {
    box.replaceChildren(el("p", { class: "empty" }, "No data in this range."));
    return;
  }
  box.replaceChildren();
  const width = box.clientWidth || 520;
  plots.push(new uPlot({ width, height: HEIGHT, series: [{}, ...series], ...options }, data, box));
}

// Time charts share the chosen range as their x scale, whatever their data cover.
function overSpan(span) {
  return { scales: { x: { time: true, range: () => [seconds(span.start), seconds(span.end)] } } };
}

const line = (label, stroke, extra = {}) => ({ label, stroke, width: 2, points: { show: true, size: 4 }, ...extra });

function traffic(answer) {
  const xs = axis(answer);
  const roles = [...new Set(answer.buckets.map((b) => b.role))];
  const byRole = (role) => answer.buckets.filter((b) => b.role === role);
  chart(
    "predictions",
    [xs, ...roles.map((role) => column(xs, byRole(role), (b) => b.predictions, 0))],
    roles.map((role) => line(role, ROLE_COLORS[role], { fill: `${ROLE_COLORS[role]}22`, points: { show: false } })),
    answer.buckets.length,
    overSpan(answer),
  );
  chart(
    "latency",
    [
      xs,
      ...roles.flatMap((role) => [
        column(xs, byRole(role), (b) => b.latency_p50_ms),
        column(xs, byRole(role), (b) => b.latency_p95_ms),
      ]),
    ],
    roles.flatMap((role) => [
      line(`${role} p50`, ROLE_COLORS[role]),
      line(`${role} p95`, ROLE_COLORS[role], { dash: [6, 4] }),
    ]),
    answer.buckets.length,
    overSpan(answer),
  );
}

function outliers(answer) {
  const scored = answer.histogram.reduce((sum, bin) => sum + bin.count, 0);
  chart(
    "histogram",
    [answer.histogram.map((bin) => bin.lower), answer.histogram.map((bin) => bin.count)],
    [{ label: "predictions", stroke: "#2563eb", fill: "#2563eb55", points: { show: false }, paths: uPlot.paths.bars({ align: 1, size: [1, 100] }) }],
    scored,
    { scales: { x: { time: false, range: [0, 1] } }, axes: [{ label: "outlier score" }, {}] },
  );
  const xs = axis(answer);
  document.getElementById("level").textContent = answer.level;
  chart(
    "outlier-rate",
    [xs, column(xs, answer.buckets, (b) => b.rate)],
    [line(`share above ${answer.level}`, "#b91c1c", { value: (u, v) => (v === null ? "—" : `${number(100 * v, 1)} %`) })],
    answer.buckets.length,
    overSpan(answer),
  );
}

// The review grid of a drift window's predictions, most outlying first. The window ends at its last
// prediction, and the grid's end is exclusive: one millisecond past it.
function windowLink(report) {
  const until = new Date(Date.parse(report.window_end) + 1).toISOString();
  const params = new URLSearchParams({
    predicted_since: new Date(report.window_start).toISOString(),
    predicted_until: until,
    order: vocabulary.PredictionOrder.MOST_OUTLYING,
  });
  return `${prefix}/deployments/${deploymentId}?${params}`;
}

// The flagged windows as links laid over the drift chart, redrawn with it.
function markFlagged(plot, flagged) {
  for (const old of plot.over.querySelectorAll(".flagged-window")) old.remove();
  for (const report of flagged) {
    const from = plot.valToPos(seconds(report.window_start), "x");
    const to = plot.valToPos(seconds(report.window_end), "x");
    const width = Math.max(8, to - from); // a short window stays wide enough to see and click
    const left = Math.max(0, (from + to - width) / 2);
    const drifted = report.features.filter((f) => f.drifted).map((f) => f.feature).join(", ");
    plot.over.append(
      el("a", {
        class: "flagged-window",
        href: windowLink(report),
        "data-report": report.id,
        title: `${drifted} drifted (${report.window_size} predictions): open them, most outlying first`,
        style: `left:${left}px;width:${width}px;top:0;height:100%`,
      }),
    );
  }
}

function drift(reports, span) {
  const features = [...new Set(reports.flatMap((r) => r.features.map((f) => f.feature)))];
  const xs = reports.map((r) => seconds(r.window_end));
  const statistic = (report, feature) => report.features.find((f) => f.feature === feature)?.statistic ?? null;
  const flagged = reports.filter((r) => r.drift_detected);
  chart(
    "drift",
    [xs, ...features.map((feature) => reports.map((r) => statistic(r, feature)))],
    features.map((feature, i) => line(feature, PALETTE[i % PALETTE.length])),
    reports.length,
    { ...overSpan(span), hooks: { draw: [(plot) => markFlagged(plot, flagged)] } },
  );
  document.getElementById("flagged").replaceChildren(
    ...flagged.map((report) =>
      el(
        "li",
        {},
        el("a", { href: windowLink(report), class: "flagged-link" }, `${new Date(report.window_start).toLocaleString()} – ${new Date(report.window_end).toLocaleString()}`),
        ` drifted: ${report.features.filter((f) => f.drifted).map((f) => f.feature).join(", ")}`,
      ),
    ),
  );
}

function quality(answer) {
  const xs = axis(answer);
  const series = [];
  const data = [xs];
  for (const role of ["champion", "shadow"]) {
    const rows = answer.buckets.filter((b) => b.role === role);
    const metrics = Object.keys(METRICS).filter((m) => rows.some((b) => m in b.quality));
    metrics.forEach((metric, i) => {
      data.push(column(xs, rows, (b) => b.quality[metric] ?? null));
      series.push(line(`${role} ${METRICS[metric]}`, ROLE_COLORS[role], i ? { dash: [6, 4] } : {}));
    });
  }
  chart("quality", data, series, answer.buckets.length, {
    ...overSpan(answer),
    scales: { ...overSpan(answer).scales, y: { range: [0, 1] } },
  });
  document.getElementById("quality-note").textContent =
    `${answer.reviewed} reviewed predictions${answer.truncated ? " (the first of them: more were reviewed in this range)" : ""}.`;
}

async function backlog() {
  const { TO_REVIEW, REVIEWED, SUBMITTED } = vocabulary.ReviewStatus;
  const statuses = [TO_REVIEW, REVIEWED, SUBMITTED]; // the order a prediction goes through
  const counts = await Promise.all(
    statuses.map((status) => api("GET", `${base}/predictions/count?status=${status}`).then((a) => a.count)),
  );
  facts(
    document.getElementById("backlog"),
    statuses.map((status, i) => [
      status.replace("_", " ").toLowerCase(),
      el("a", { href: `${prefix}/deployments/${deploymentId}?status=${status}`, "data-status": status }, String(counts[i])),
    ]),
  );
}

function toward(deployment) {
  const { threshold, submitted_since_training: submitted, active } = deployment.continuous_training;
  const text = document.getElementById("threshold-progress");
  const bar = document.getElementById("threshold-bar");
  bar.hidden = !threshold;
  if (!threshold) {
    text.textContent = "No threshold: continuous training is not set up.";
    return;
  }
  text.textContent = `${submitted} of ${threshold} submitted since the latest training (continuous training ${active ? "active" : "inactive"}).`;
  bar.value = Math.min(submitted / threshold, 1);
}

async function draw(range) {
  for (const plot of plots) plot.destroy();
  plots = [];
  for (const button of document.querySelectorAll("#ranges button")) {
    button.setAttribute("aria-pressed", String(button.dataset.range === range));
  }
  const { start: from, end } = period(range);
  const hourly = new URLSearchParams({ start: from, end, bucket_s: HOUR });
  const coarse = new URLSearchParams({ start: from, end, bucket_s: RANGES[range].qualityBucket });
  document.getElementById("span").textContent = `${new Date(from).toLocaleString()} – ${new Date(end).toLocaleString()}`;
  const [latency, outlierAnswer, reports, qualityAnswer] = await Promise.all([
    api("GET", `${base}/monitoring/latency?${hourly}`),
    api("GET", `${base}/monitoring/outliers?${hourly}&level=${LEVEL}&bins=${HISTOGRAM_BINS}`),
    api("GET", `${base}/monitoring/drift?start=${encodeURIComponent(from)}&end=${encodeURIComponent(end)}&limit=500`),
    api("GET", `${base}/monitoring/quality?${coarse}`),
  ]);
  traffic(latency);
  outliers(outlierAnswer);
  drift(reports.items, { start: from, end });
  quality(qualityAnswer);
}

async function page() {
  const deployment = await api("GET", base);
  document.getElementById("deployment-name").textContent = `${deployment.name} · dashboard`;
  for (const button of document.querySelectorAll("#ranges button")) {
    button.addEventListener("click", () => {
      const params = new URLSearchParams(location.search);
      params.set("range", button.dataset.range);
      history.replaceState(null, "", `?${params}`);
      draw(button.dataset.range).catch((error) => say(error.message, true));
    });
  }
  toward(deployment);
  await Promise.all([backlog(), draw(chosenRange())]);
}

start(page);
