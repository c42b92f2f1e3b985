import json
import logging

from services.common.logs import JsonFormatter


def test_log_line_is_one_json_object_with_extra_fields() -> None:
    record = logging.LogRecord("cvloop.test", logging.WARNING, __file__, 1, "lag %d", (42,), None)
    record.deployment_id = "d-1"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "warning"
    assert entry["logger"] == "cvloop.test"
    assert entry["msg"] == "lag 42"
    assert entry["deployment_id"] == "d-1"
