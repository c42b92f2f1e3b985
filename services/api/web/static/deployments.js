// Deployments with a badge for each part of their pipeline that is set up.
import { api, el, pipelineBadges, prefix, start } from "./common.js";

async function page() {
  const { items } = await api("GET", "/v1/deployments?limit=500");
  const rows = items.map((d) =>
    el(
      "tr",
      { "data-deployment": d.id },
      el("td", {}, el("a", { href: `${prefix}/deployments/${d.id}` }, d.name)),
      el("td", {}, d.kind.replace("_", "-")),
      el("td", {}, d.detection_type),
      el("td", { class: "badges" }, ...pipelineBadges(d)),
      el("td", {}, el("a", { href: `${prefix}/deployments/${d.id}/dashboard` }, "dashboard")),
      el("td", {}, el("a", { href: `${prefix}/deployments/${d.id}/pipeline` }, "pipeline")),
    ),
  );
  document.querySelector("#deployments tbody").replaceChildren(...rows);
}

start(page);
