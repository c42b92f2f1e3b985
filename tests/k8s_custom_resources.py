"""Strict models of the custom resources the package renders, which kubernetes-validate has no schema for.

kubernetes-validate ships the built-in API's schemas only: on a Strimzi `KafkaTopic` or a Prometheus
operator `ServiceMonitor` it warns and passes. These models check the fields this package writes against
the operators' documented APIs (kafka.strimzi.io/v1beta2, monitoring.coreos.com/v1), forbidding any
other field, so a typo fails as strictly as `--strict` fails one in a Deployment.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
Name = Annotated[str, StringConstraints(pattern=DNS_SUBDOMAIN, max_length=253)]


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


CUSTOM_RESOURCES: dict[str, type[Strict]] = {"KafkaTopic": KafkaTopic, "ServiceMonitor": ServiceMonitor}


def validate_custom_resource(document: dict[str, Any]) -> None:
    """Raises pydantic's ValidationError naming the field; KeyError for a kind this package does not write."""
    CUSTOM_RESOURCES[document["kind"]].model_validate(document)
