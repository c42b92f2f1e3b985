"""Reading a service's Prometheus text exposition (its /metrics) in tests."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def metric_value(exposition: str, name: str, **labels: object) -> float:
    """The sample's value in a Prometheus text exposition (0 when absent)."""
    wanted = {key: str(value) for key, value in labels.items()}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and sample.labels == wanted:
                return sample.value
    return 0.0
