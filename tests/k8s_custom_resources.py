"""Strict models of the custom resources the package renders, which kubernetes-validate has no schema for.

kubernetes-validate ships the built-in API's schemas only: on a Strimzi `KafkaTopic` or a Prometheus
operator `ServiceMonitor` or `PrometheusRule` it warns and passes. These models check the fields this
package writes against the operators' documented APIs (kafka.strimzi.io/v1beta2, monitoring.coreos.com/v1),
forbidding any other field, so a typo fails as strictly as `--strict` fails one in a Deployment.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
Name = Annotated[str, StringConstraints(pattern=DNS_SUBDOMAIN, max_length=253)]
Duration = Annotated[str, StringConstraints(pattern=DURATION)]
# Prometheus' own rules for the names a rule writes.
MetricName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")]
LabelName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Metadata(Strict):
    name: Name
    namespace: Name
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class KafkaTopicSpec(Strict):
    topicName: str = Field(pattern=r"^[a-zA-Z0-9._-]{1,249}$")  # Kafka's own rule for topic names
    partitions: int = Field(ge=1)
    replicas: int = Field(ge=1, le=32767)
    config: dict[str, str | int | bool] = {}


class KafkaTopic(Strict):
    apiVersion: Literal["kafka.strimzi.io/v1beta2"]
    kind: Literal["KafkaTopic"]
    metadata: Metadata
    spec: KafkaTopicSpec


class LabelSelectorRequirement(Strict):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = []


class LabelSelector(Strict):
    matchLabels: dict[str, str] = {}
    matchExpressions: list[LabelSelectorRequirement] = []


class Endpoint(Strict):
    port: str  # the Service port's name
    path: str = Field(pattern=r"^/")
    scheme: Literal["http", "https"] = "http"
    interval: str = Field("30s", pattern=DURATION)
    scrapeTimeout: str = Field("10s", pattern=DURATION)


class NamespaceSelector(Strict):
    any: bool = False
    matchNames: list[str] = []


class ServiceMonitorSpec(Strict):
    selector: LabelSelector
    endpoints: list[Endpoint] = Field(min_length=1)
    namespaceSelector: NamespaceSelector = NamespaceSelector()
    jobLabel: str = ""


class ServiceMonitor(Strict):
    apiVersion: Literal["monitoring.coreos.com/v1"]
    kind: Literal["ServiceMonitor"]
    metadata: Metadata
    spec: ServiceMonitorSpec


class Rule(Strict):
    """An alerting rule (alert) or a recording rule (record), never both; only alerts have for/annotations."""

    alert: str | None = Field(None, min_length=1)
    record: MetricName | None = None
    expr: str | int
    labels: dict[LabelName, str] = {}
    annotations: dict[LabelName, str] = {}
    for_: Duration | None = Field(None, alias="for")
    keep_firing_for: Duration | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _alert_or_record(self) -> Rule:
        if (self.alert is None) == (self.record is None):
            raise ValueError("a rule sets exactly one of alert and record")
        if self.record is not None and (self.annotations or self.for_ or self.keep_firing_for):
            raise ValueError(
                f"recording rule {self.record}: annotations, for and keep_firing_for are for alerts"
            )
        return self


class RuleGroup(Strict):
    name: str = Field(min_length=1)
    rules: list[Rule] = []
    interval: Duration | None = None
    query_offset: Duration | None = None
    labels: dict[LabelName, str] = {}
    limit: int | None = None
    partial_response_strategy: str | None = Field(None, pattern=r"^(?i)(abort|warn)?$")


class PrometheusRuleSpec(Strict):
    groups: list[RuleGroup] = []

    @model_validator(mode="after")
    def _unique_group_names(self) -> PrometheusRuleSpec:
        # The CRD makes groups a list map keyed by name: the API server refuses a repeated one.
        names = [group.name for group in self.groups]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"groups: names repeated in one PrometheusRule: {repeated}")
        return self


class PrometheusRule(Strict):
    apiVersion: Literal["monitoring.coreos.com/v1"]
    kind: Literal["PrometheusRule"]
    metadata: Metadata
    spec: PrometheusRuleSpec


CUSTOM_RESOURCES: dict[str, type[Strict]] = {
    "KafkaTopic": KafkaTopic,
    "ServiceMonitor": ServiceMonitor,
    "PrometheusRule": PrometheusRule,
}


def validate_custom_resource(document: dict[str, Any]) -> None:
    """Raises pydantic's ValidationError naming the field; KeyError for a kind this package does not write."""
    CUSTOM_RESOURCES[document["kind"]].model_validate(document)
