"""The dashboards and rules speak of metrics that exist: every name they use is registered by a service's
metrics module (or recorded by a rule), with the labels they select on; every dashboard panel reads the
dashboard's Prometheus variable and shows the chosen deployment; the provisioning files find them."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from tests.promtool import PROMETHEUS_DIR, REPO_ROOT

GRAFANA_DIR = REPO_ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
PANEL_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SCRAPE_LABELS = frozenset({"job", "instance"})
GRAFANA_BUILTINS = frozenset({"__rate_interval", "__range", "__interval"})


@dataclass(frozen=True)
class Metric:
    type: str  # counter, gauge, histogram
    labels: frozenset[str]


def _pending(type_: str, *labels: str) -> Metric:
    return Metric(type_, frozenset(labels))


# The names HELPERS.md gives the pipeline and the job runner, being built beside the dashboards. Each
# group is allowed only while no metrics module registers a name with its prefix: once the service has
# landed, its real registry is checked instead.
PENDING: dict[str, dict[str, Metric]] = {
    "cvloop_pipeline_": {
        "cvloop_pipeline_submissions": _pending("counter", "deployment"),
        "cvloop_pipeline_duplicate_submissions": _pending("counter", "deployment"),
        "cvloop_pipeline_submitted_since_trigger": _pending("gauge", "deployment"),
        "cvloop_pipeline_trigger_threshold": _pending("gauge", "deployment"),
        "cvloop_pipeline_training_requests": _pending("counter", "deployment"),
        "cvloop_pipeline_exports": _pending("counter", "deployment", "outcome"),
    },
    "cvloop_job_": {
        "cvloop_job_runs": _pending("counter", "kind", "status"),
        "cvloop_job_run_duration_seconds": _pending("histogram", "kind"),
        "cvloop_job_runs_active": _pending("gauge", "kind"),
    },
}
# Modules that define metrics without being called metrics.py.
OTHER_METRIC_MODULES = ("services.common.outbox",)
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
}


def _registered() -> dict[str, Metric]:
    """Every cvloop_* metric the services' metrics modules register, by base name (counters without
    _total, as prometheus_client keeps them)."""
    modules = [
        ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
        for path in sorted((REPO_ROOT / "services").rglob("metrics.py"))
    ]
    for module in (*modules, *OTHER_METRIC_MODULES):
        importlib.import_module(module)
    # prometheus_client has no public way to list a registry's collectors with their label names.
    collectors = set(REGISTRY._names_to_collectors.values())
    return {
        c._name: Metric(c._type, frozenset(c._labelnames))
        for c in collectors
        if isinstance(c, MetricWrapperBase) and c._name.startswith("cvloop_")
    }


def _rule_groups() -> list[dict[str, Any]]:
    return [
        group
        for path in sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
    ]


def _rules() -> list[dict[str, Any]]:
    return [rule for group in _rule_groups() for rule in group["rules"]]


def _recorded() -> dict[str, Metric]:
    """Recorded series, their labels read from the name's level (deployment_role: deployment, role) and
    the rule's own labels, as the level:metric:operations convention says."""
    recorded: dict[str, Metric] = {}
    for rule in _rules():
        if "record" in rule:
            level = rule["record"].split(":")[0]
            labels = frozenset(level.split("_")) | frozenset(rule.get("labels", {}))
            # One name may be recorded by several rules (one per `source`): their labels add up.
            earlier = recorded.get(rule["record"], Metric("gauge", frozenset()))
            recorded[rule["record"]] = Metric("gauge", labels | earlier.labels)
    return recorded


def _known() -> dict[str, Metric]:
    registered = _registered()
    known = dict(registered)
    for prefix, pending in PENDING.items():
        if not any(name.startswith(prefix) for name in registered):
            known |= pending
    return known


def _series(known: dict[str, Metric]) -> dict[str, frozenset[str]]:
    """Every series name a query may select, with the labels it carries."""
    series: dict[str, frozenset[str]] = {}
    for name, metric in known.items():
        for suffix in SUFFIXES[metric.type]:
            series[name + suffix] = metric.labels | ({"le"} if suffix == "_bucket" else set())
    for name, metric in _recorded().items():
        series[name] = metric.labels
    return series


# A cvloop series, recorded ones (level:cvloop_...:operations) included, and its {matchers}.
SELECTOR = re.compile(r"(?<![\w:\"])((?:[a-zA-Z_]\w*:)?cvloop_[\w:]*)\s*(\{[^}]*\})?")
MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")


def _selectors(expr: str) -> list[tuple[str, set[str]]]:
    return [(m.group(1), set(MATCHER.findall(m.group(2) or ""))) for m in SELECTOR.finditer(expr)]


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def _dashboard_queries() -> list[tuple[str, str]]:
    """(where, query) of every dashboard target and query variable."""
    queries = []
    for path in DASHBOARDS:
        dashboard = _load(path)
        for panel in _panels(dashboard):
            queries += [(f"{path.name}: {panel['title']}", t["expr"]) for t in panel.get("targets", [])]
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                queries.append((f"{path.name}: ${variable['name']}", variable["query"]["query"]))
    return queries


def _rule_queries() -> list[tuple[str, str]]:
    return [(rule.get("alert") or rule["record"], rule["expr"]) for rule in _rules()]


def _all_queries() -> list[tuple[str, str]]:
    return _dashboard_queries() + _rule_queries()


def test_the_selector_parser_reads_names_and_matchers() -> None:
    expr = 'sum by (le) (rate(cvloop_a_bucket{deployment="$d", le!~"x"}[5m])) / deployment:cvloop_b:rate5m'
    assert _selectors(expr) == [
        ("cvloop_a_bucket", {"deployment", "le"}),
        ("deployment:cvloop_b:rate5m", set()),
    ]
    assert _selectors('up{job=~"cvloop-.+"}') == []


def test_the_pending_names_are_still_needed_or_gone() -> None:
    """A pending group whose service has landed is ignored; the names it declares must then exist for real,
    which the next test checks through _known()."""
    registered = _registered()
    landed = {"cvloop_serving_requests", "cvloop_api_predicted_assets", "cvloop_outbox_published"}
    assert landed <= registered.keys()
    assert all(name.startswith(prefix) for prefix, group in PENDING.items() for name in group)


@pytest.mark.parametrize(("where", "expr"), _all_queries(), ids=lambda value: str(value)[:60])
def test_every_metric_and_label_a_query_uses_exists(where: str, expr: str) -> None:
    series = _series(_known())
    selectors = _selectors(expr)
    assert selectors or "up{" in expr, f"{where}: no cvloop metric in {expr}"
    for name, matchers in selectors:
        assert name in series, f"{where}: {name} is neither registered by a service nor recorded"
        unknown = matchers - series[name] - SCRAPE_LABELS
        assert not unknown, f"{where}: {name} has no label(s) {sorted(unknown)}"
    used = set().union(*(series[name] for name, _ in selectors)) | SCRAPE_LABELS | {"le"}
    for grouping in GROUPING.findall(expr):
        grouped = {label.strip() for label in grouping.split(",") if label.strip()}
        assert grouped <= used, f"{where}: grouping by {sorted(grouped - used)}, which no series has"


def test_every_recording_rule_feeds_a_dashboard_or_another_rule() -> None:
    used = {name for _, expr in _all_queries() for name, _ in _selectors(expr)}
    unused = set(_recorded()) - used
    assert not unused, f"recorded but read by nothing: {sorted(unused)}"


def test_every_alert_has_a_severity_a_summary_and_a_documented_entry() -> None:
    doc = (REPO_ROOT / "docs" / "operations.md").read_text()
    alerts = [rule for rule in _rules() if "alert" in rule]
    assert len(alerts) >= 4
    for rule in alerts:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert f"`{rule['alert']}`" in doc, f"docs/operations.md does not explain {rule['alert']}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_every_panel_reads_the_dashboard_datasource_and_defined_variables(path: Path) -> None:
    dashboard = _load(path)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["deployment"]["datasource"] == PANEL_DATASOURCE

    ids = [panel["id"] for panel in _panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in _panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == PANEL_DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"]), panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", PANEL_DATASOURCE) == PANEL_DATASOURCE, panel["title"]
            for named in VARIABLE.findall(target["expr"]):
                name = next(part for part in named if part)
                defined = name in variables or name in GRAFANA_BUILTINS
                assert defined, f"{panel['title']}: ${name} is undefined"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_every_deployment_metric_is_filtered_to_the_chosen_deployment(path: Path) -> None:
    """A panel never mixes deployments: a series with a deployment label is selected on $deployment."""
    series = _series(_known())
    for panel in _panels(_load(path)):
        for target in panel.get("targets", []):
            for name, _ in _selectors(target["expr"]):
                if "deployment" in series[name]:
                    assert 'deployment="$deployment"' in target["expr"], f"{panel['title']}: {name}"


def test_the_provisioning_loads_a_prometheus_datasource_and_the_dashboards_folder() -> None:
    datasources = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "cvloop.yml").read_text())
    assert datasources["apiVersion"] == 1
    assert [d["type"] for d in datasources["datasources"]] == ["prometheus"]
    providers = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "cvloop.yml").read_text())
    assert providers["apiVersion"] == 1
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].endswith("/dashboards/cvloop")
    uids = [_load(path)["uid"] for path in DASHBOARDS]
    assert DASHBOARDS and len(uids) == len(set(uids))
