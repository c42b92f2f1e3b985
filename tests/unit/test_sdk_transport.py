"""The SDK's own logic, with the network replaced by httpx.MockTransport: error mapping, the retry
policy, pagination and upload progress."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from uuid import uuid4

import httpx
import pytest

from cvloop.sdk import (
    ApiError,
    Client,
    Conflict,
    Deployment,
    Forbidden,
    Job,
    NotFound,
    PayloadTooLarge,
    RetryPolicy,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
    Unprocessable,
    UnsupportedMediaType,
)
from cvloop.sdk.pagination import paginate
from cvloop.sdk.retry import should_retry_error, should_retry_status
from cvloop.sdk.settings import SdkSettings
from cvloop.sdk.transport import Transport
from cvloop.sdk.uploads import ProgressReader
from schemas.predictions import ClassificationPrediction

Handler = Callable[[httpx.Request], httpx.Response]
FAST = RetryPolicy(attempts=4, backoff=0.1, multiplier=2.0, max_delay=0.3, jitter=0.0)


def _transport(handler: Handler, sleeps: list[float], retry: RetryPolicy = FAST) -> Transport:
    return Transport(
        "http://api.test",
        "cvl_key",
        retry=retry,
        http_transport=httpx.MockTransport(handler),
        sleep=sleeps.append,
    )


def _scripted(*answers: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    """A handler giving each answer in turn (an exception is raised), recording the requests."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[len(seen) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler, seen


def _error(status: int, field: str = "body.name", message: str = "is taken") -> httpx.Response:
    return httpx.Response(
        status, json={"detail": f"{field}: {message}", "errors": [{"field": field, "message": message}]}
    )


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (413, PayloadTooLarge),
        (415, UnsupportedMediaType),
        (422, Unprocessable),
    ],
)
def test_each_4xx_raises_its_own_exception_with_detail_and_errors(status: int, cls: type[ApiError]) -> None:
    handler, seen = _scripted(_error(status))
    with pytest.raises(cls) as caught:
        _transport(handler, []).post("/v1/models", {"name": "m"})
    assert caught.value.status == status
    assert caught.value.detail == "body.name: is taken"
    assert caught.value.errors == [{"field": "body.name", "message": "is taken"}]
    assert caught.value.fields == ["body.name"]
    assert "POST http://api.test/v1/models -> " in str(caught.value)
    assert len(seen) == 1  # a 4xx is never retried


def test_a_4xx_without_the_json_format_keeps_the_text() -> None:
    handler, _ = _scripted(httpx.Response(404, text="no route"))
    with pytest.raises(NotFound, match="no route") as caught:
        _transport(handler, []).get("/v1/nothing")
    assert caught.value.errors == []


def test_the_key_goes_with_every_request() -> None:
    handler, seen = _scripted(httpx.Response(200, json={"id": str(uuid4())}))
    _transport(handler, []).get("/v1/project")
    assert seen[0].headers["Authorization"] == "Bearer cvl_key"


def test_a_get_is_retried_on_5xx_with_growing_delays() -> None:
    handler, seen = _scripted(
        httpx.Response(503), httpx.Response(500), httpx.Response(502), httpx.Response(200, json={"ok": 1})
    )
    sleeps: list[float] = []
    assert _transport(handler, sleeps).get("/v1/models") == {"ok": 1}
    assert len(seen) == 4
    assert sleeps == pytest.approx([0.1, 0.2, 0.3])  # the third delay hits max_delay


def test_retries_stop_after_the_last_attempt_with_a_server_error() -> None:
    handler, seen = _scripted(*[httpx.Response(503, json={"detail": "warming up"})] * 4)
    with pytest.raises(ServerError, match="warming up"):
        _transport(handler, []).get("/v1/models")
    assert len(seen) == 4


def test_retry_after_lengthens_the_delay_within_the_cap() -> None:
    handler, _ = _scripted(
        httpx.Response(503, headers={"Retry-After": "0.25"}),
        httpx.Response(503, headers={"Retry-After": "30"}),
        httpx.Response(204),
    )
    sleeps: list[float] = []
    assert _transport(handler, sleeps).delete("/v1/api-keys/x") is None
    assert sleeps == pytest.approx([0.25, 0.3])


def test_a_creating_post_is_not_replayed_after_a_5xx_or_a_read_timeout() -> None:
    handler, seen = _scripted(httpx.Response(500))
    with pytest.raises(ServerError):
        _transport(handler, []).post("/v1/models", {"name": "m"})
    assert len(seen) == 1

    handler, seen = _scripted(httpx.ReadTimeout("slow"))
    with pytest.raises(ServiceUnavailable):
        _transport(handler, []).post("/v1/models", {"name": "m"})
    assert len(seen) == 1


def test_any_request_is_retried_when_the_connection_could_not_be_opened() -> None:
    handler, seen = _scripted(httpx.ConnectError("refused"), httpx.Response(201, json={"id": "x"}))
    sleeps: list[float] = []
    assert _transport(handler, sleeps).post("/v1/models", {"name": "m"}) == {"id": "x"}
    assert len(seen) == 2 and sleeps == pytest.approx([0.1])


def test_an_unreachable_service_raises_service_unavailable_after_the_retries() -> None:
    handler, seen = _scripted(*[httpx.ConnectError("refused")] * 4)
    with pytest.raises(ServiceUnavailable, match="refused"):
        _transport(handler, []).get("/v1/models")
    assert len(seen) == 4


def test_the_policy_as_a_table() -> None:
    assert should_retry_status(503, replayable=True)
    assert not should_retry_status(503, replayable=False)
    assert not should_retry_status(404, replayable=True)
    assert should_retry_error(httpx.ConnectTimeout("t"), replayable=False)
    assert should_retry_error(httpx.RemoteProtocolError("dropped"), replayable=True)
    assert not should_retry_error(httpx.RemoteProtocolError("dropped"), replayable=False)


def test_jitter_stays_within_its_fraction() -> None:
    policy = RetryPolicy(backoff=1.0, multiplier=2.0, max_delay=10.0, jitter=0.2)
    assert policy.delay(1, rand=lambda: 0.0) == pytest.approx(1.6)
    assert policy.delay(1, rand=lambda: 1.0) == pytest.approx(2.4)
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


# Through the client: the monitor's 409 after a retry, uploads, pagination ---------------------


def _client(handler: Handler) -> Client:
    return Client(
        "cvl_key",
        api_url="http://api.test",
        ingest_url="http://ingest.test",
        serving_url="http://serving.test",
        settings=SdkSettings(),
        retry=RetryPolicy(attempts=3, backoff=0.0, jitter=0.0),
        http_transport=httpx.MockTransport(handler),
    )


def _deployment(client: Client) -> Deployment:
    return Deployment(client, {"id": str(uuid4()), "name": "d", "kind": "monitoring_only"})


PREDICTION = ClassificationPrediction(classes=["cat", "dog"], scores=[0.9, 0.1])


def test_monitor_reads_a_409_after_its_own_retry_as_success() -> None:
    existing = str(uuid4())
    conflict = {"detail": "image already logged", "errors": [], "prediction_id": existing}
    handler, seen = _scripted(httpx.Response(502), httpx.Response(409, json=conflict))
    deployment = _deployment(_client(handler))
    prediction_id = deployment.monitor(
        None, 12.0, PREDICTION, image_object_key="images/ab/" + "ab" * 32 + ".png", width=4, height=4
    )
    assert str(prediction_id) == existing
    assert len(seen) == 2 and seen[0].url.host == "ingest.test"
    body = json.loads(seen[0].content)
    assert body["champion"] == {"prediction": PREDICTION.model_dump(mode="json"), "latency_ms": 12.0}


def test_monitor_raises_conflict_with_the_existing_id_when_the_image_was_logged_before() -> None:
    existing = str(uuid4())
    handler, _ = _scripted(
        httpx.Response(409, json={"detail": "image already logged", "errors": [], "prediction_id": existing})
    )
    with pytest.raises(Conflict) as caught:
        _deployment(_client(handler)).monitor(
            None, 1.0, PREDICTION, image_object_key="images/ab/" + "ab" * 32 + ".png", width=4, height=4
        )
    assert caught.value.body["prediction_id"] == existing


def test_monitor_leaves_out_a_missing_shadow_latency_for_the_server_to_name() -> None:
    handler, seen = _scripted(httpx.Response(201, json={"prediction_id": str(uuid4())}))
    _deployment(_client(handler)).monitor(
        b"not read for size", 1.0, PREDICTION, shadow_prediction=PREDICTION, width=4, height=4
    )
    body = json.loads(seen[0].content)
    assert "latency_ms" not in body["shadow"] and body["image_base64"]


def test_an_upload_is_retried_and_its_progress_counts_each_byte_once() -> None:
    payload = bytes(range(256)) * 1000  # several of httpx's 64 KiB chunks
    received: list[bytes] = []

    answers = iter([500, 201])

    def handler(request: httpx.Request) -> httpx.Response:
        received.append(request.read())
        status = next(answers)
        body = {"object_key": "models/ab/" + "ab" * 32, "sha256": "ab" * 32, "size_bytes": len(payload)}
        return httpx.Response(status, json=body | {"content_type": "application/octet-stream"})

    progress: list[int] = []
    uploaded = _client(handler).upload(io.BytesIO(payload), "models", progress.append)
    assert uploaded.size_bytes == len(payload)
    assert len(received) == 2 and all(payload in body for body in received)  # the file was re-sent whole
    assert sum(progress) == len(payload) and len(progress) > 1


def test_progress_reader_reports_only_new_bytes() -> None:
    progress: list[int] = []
    raw = io.BytesIO(b"x" * 10)
    reader = ProgressReader(raw, progress.append)
    reader.read(4)
    reader.seek(0, io.SEEK_END)
    reader.seek(0)
    reader.read(6)
    reader.read()
    assert progress == [4, 2, 4]
    reader.close()
    assert not raw.closed  # the caller's file stays the caller's


def _pages(total: int) -> tuple[Callable[[int, int], dict], list[tuple[int, int]]]:
    calls: list[tuple[int, int]] = []

    def fetch(limit: int, offset: int) -> dict:
        calls.append((limit, offset))
        return {"items": list(range(offset, min(offset + limit, total))), "total": total}

    return fetch, calls


def test_pagination_walks_every_page_and_stops_at_the_total() -> None:
    fetch, calls = _pages(250)
    assert list(paginate(fetch, page_size=100)) == list(range(250))
    assert calls == [(100, 0), (100, 100), (100, 200)]


def test_pagination_honours_limit_and_offset() -> None:
    fetch, calls = _pages(250)
    assert list(paginate(fetch, limit=120, offset=10, page_size=100)) == list(range(10, 130))
    assert calls == [(100, 10), (20, 110)]
    fetch, calls = _pages(0)
    assert list(paginate(fetch)) == [] and len(calls) == 1
    with pytest.raises(ValueError):
        list(paginate(fetch, page_size=501))


def test_client_lists_send_limit_and_offset_and_find_by_name() -> None:
    models = [{"id": str(uuid4()), "name": f"m{i}", "description": ""} for i in range(3)]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        limit, offset = int(request.url.params["limit"]), int(request.url.params["offset"])
        wanted = [m for m in models if m["name"] == request.url.params.get("name", m["name"])]
        return httpx.Response(200, json={"items": wanted[offset : offset + limit], "total": len(wanted)})

    client = _client(handler)
    assert [m.name for m in client.list_models()] == ["m0", "m1", "m2"]
    assert str(client.get_model("m1").id) == models[1]["id"]
    with pytest.raises(NotFound, match="no name 'nope'"):
        client.get_model("nope")
    assert seen[0].url.params["limit"] == "100" and seen[0].url.params["offset"] == "0"


def test_follow_logs_stays_on_one_run_and_sleeps_only_when_nothing_came() -> None:
    run = str(uuid4())
    pages = iter(
        [
            {
                "run_id": run,
                "lines": [{"number": 1, "text": "a"}, {"number": 2, "text": "b"}],
                "finished": False,
            },
            {"run_id": run, "lines": [], "finished": False},
            {"run_id": run, "lines": [{"number": 3, "text": "c"}], "finished": True},
        ]
    )
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=next(pages))

    job = Job(_client(handler), {"id": str(uuid4()), "kind": "processing"})
    sleeps: list[float] = []
    assert [line.text for line in job.follow_logs(poll_s=0.5, sleep=sleeps.append)] == ["a", "b", "c"]
    assert sleeps == [0.5]
    assert "after" not in seen[0].url.params
    assert [(r.url.params["after"], r.url.params["run_id"]) for r in seen[1:]] == [("2", run), ("2", run)]


def test_wait_reads_the_job_until_its_latest_run_finished() -> None:
    job_id = str(uuid4())
    statuses = iter(["pending", "running", "succeeded"])

    def handler(request: httpx.Request) -> httpx.Response:
        run = {"id": str(uuid4()), "attempt": 1, "status": next(statuses)}
        return httpx.Response(200, json={"id": job_id, "kind": "processing", "runs": [run]})

    job = Job(_client(handler), {"id": job_id, "kind": "processing"})
    polled: list[str | None] = []
    job.wait(timeout_s=60, poll_s=0.1, on_poll=lambda j: polled.append(j.status), sleep=lambda _: None)
    assert polled == ["pending", "running", "succeeded"] and job.finished


def test_a_submission_is_retried_only_when_it_names_its_predictions() -> None:
    prediction_id, asset_id = str(uuid4()), str(uuid4())
    done = httpx.Response(200, json={"submitted": [{"prediction_id": prediction_id, "asset_id": asset_id}]})
    handler, seen = _scripted(httpx.Response(503), done)
    submitted = _deployment(_client(handler)).submit_to_feedback_loop(uuid4(), [prediction_id])
    assert [str(s.asset_id) for s in submitted] == [asset_id] and len(seen) == 2

    handler, seen = _scripted(httpx.Response(503), done)
    with pytest.raises(ServerError):
        _deployment(_client(handler)).submit_to_feedback_loop(uuid4())
    assert len(seen) == 1 and json.loads(seen[0].content)["all_reviewed"] is True
