"""The local tritonserver: a python-backend model written into its repository, loaded through the
model-control API, called over HTTP and gRPC with stock tritonclient, and unloaded."""

from __future__ import annotations

import socket
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from cvloop.stack.process import StackError, port_bindable, wait_until
from cvloop.stack.scratch import free_port_base
from cvloop.stack.settings import StackSettings
from cvloop.stack.triton import STUB_ENV, TritonServer
from schemas.local_stack import LOCAL_HOST

MODEL = "double_and_sum"

CONFIG = f"""
name: "{MODEL}"
backend: "python"
max_batch_size: 0
input [{{ name: "x", data_type: TYPE_FP32, dims: [-1] }}]
output [
  {{ name: "doubled", data_type: TYPE_FP32, dims: [-1] }},
  {{ name: "total", data_type: TYPE_FP32, dims: [1] }},
  {{ name: "prefix", data_type: TYPE_STRING, dims: [1] }}
]
instance_group [{{ kind: KIND_CPU, count: 1 }}]
"""

# `prefix` tells which Python environment the backend stub runs in.
MODEL_PY = """
import sys

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "x").as_numpy()
            outputs = [
                pb_utils.Tensor("doubled", (x * 2).astype(np.float32)),
                pb_utils.Tensor("total", np.array([x.sum()], dtype=np.float32)),
                pb_utils.Tensor("prefix", np.array([sys.prefix.encode()], dtype=np.object_)),
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=outputs))
        return responses
"""

CLIENT_CLOSES_AFTER_S = 5.0

X = np.array([1.5, -2.0, 3.25, 0.0], dtype=np.float32)


@pytest.fixture(scope="module")
def triton(triton_settings: StackSettings) -> Iterator[httpclient.InferenceServerClient]:
    if triton_settings.is_external("triton"):
        pytest.skip("TRITON_URL points at an external server, whose model repository is not ours")
    folder = TritonServer(triton_settings).model_repository / MODEL
    (folder / "1").mkdir(parents=True, exist_ok=True)
    (folder / "config.pbtxt").write_text(textwrap.dedent(CONFIG))
    (folder / "1" / "model.py").write_text(MODEL_PY)
    client = httpclient.InferenceServerClient(triton_settings.triton_url)
    yield client
    client.close()


def test_server_is_healthy(triton_settings: StackSettings) -> None:
    assert TritonServer(triton_settings).health().state == "healthy"


def test_load_infer_over_http_and_grpc_then_unload(
    triton: httpclient.InferenceServerClient, triton_settings: StackSettings
) -> None:
    assert not triton.is_model_ready(MODEL)
    triton.load_model(MODEL)
    assert triton.is_model_ready(MODEL)

    http_input = httpclient.InferInput("x", list(X.shape), "FP32")
    http_input.set_data_from_numpy(X)
    http_result = triton.infer(MODEL, [http_input])
    np.testing.assert_array_equal(http_result.as_numpy("doubled"), X * 2)
    np.testing.assert_allclose(http_result.as_numpy("total"), [X.sum()])

    with grpcclient.InferenceServerClient(triton_settings.triton_grpc_url) as grpc:
        assert grpc.is_model_ready(MODEL)
        grpc_input = grpcclient.InferInput("x", list(X.shape), "FP32")
        grpc_input.set_data_from_numpy(X)
        grpc_result = grpc.infer(MODEL, [grpc_input])
        np.testing.assert_array_equal(grpc_result.as_numpy("doubled"), X * 2)
        np.testing.assert_allclose(grpc_result.as_numpy("total"), [X.sum()])

    _unload(triton)
    assert triton.is_server_ready()  # unloading a model leaves the server serving


def test_stub_runs_in_its_own_environment(
    triton: httpclient.InferenceServerClient, triton_settings: StackSettings
) -> None:
    # The stubs need numpy 1 (the app has numpy 2), so they run in the venv installed beside the server.
    triton.load_model(MODEL)
    x = httpclient.InferInput("x", list(X.shape), "FP32")
    x.set_data_from_numpy(X)
    result = triton.infer(MODEL, [x], outputs=[httpclient.InferRequestedOutput("prefix")])
    assert result.as_numpy("prefix")[0].decode() == str(TritonServer(triton_settings).home / STUB_ENV)
    _unload(triton)


def _unload(triton: httpclient.InferenceServerClient) -> None:
    triton.unload_model(MODEL)
    assert wait_until(lambda: not triton.is_model_ready(MODEL), timeout=30)


def _settings_for(tmp_path: Path, tools: Path) -> StackSettings:
    return StackSettings(state_dir=tmp_path / "state", tools_dir_setting=tools, port_base=free_port_base())


def test_missing_binary_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="run `cvloop up`"):
        TritonServer(_settings_for(tmp_path, tmp_path / "no-tools")).launch()


@pytest.mark.usefixtures("triton")  # the local install, not an external server
def test_taken_port_names_the_fix(tmp_path: Path, triton_settings: StackSettings) -> None:
    settings = _settings_for(tmp_path, triton_settings.tools_path)
    with socket.socket() as taken:
        taken.bind((LOCAL_HOST, settings.triton_grpc_port))
        taken.listen()
        with pytest.raises(StackError, match="CVLOOP_PORT_BASE"):
            TritonServer(settings).start()


@pytest.mark.usefixtures("triton")  # the local install, not an external server
def test_restarts_at_once_while_its_clients_connections_linger(
    tmp_path: Path, triton_settings: StackSettings
) -> None:
    """Serving keeps HTTP and gRPC connections to Triton and closes its end only when it next uses one;
    the stopped Triton's end then stays in TIME_WAIT for a minute from that close. A start meanwhile must
    not refuse the ports (a CI run failed so: the start waited 61 s, serving closed its end later)."""
    settings = _settings_for(tmp_path, triton_settings.tools_path)
    triton = TritonServer(settings)
    triton.start()
    clients = [socket.create_connection((LOCAL_HOST, port)) for port in triton.ports]
    late_close = threading.Timer(CLIENT_CLOSES_AFTER_S, lambda: [client.close() for client in clients])
    try:
        assert httpclient.InferenceServerClient(settings.triton_url).is_server_ready()
        triton.stop()
        lingering = [
            port for port in triton.ports if not port_bindable(LOCAL_HOST, port, reuse_address=False)
        ]
        assert lingering, "the clients' connections should still hold a port"
        late_close.start()
        triton.start()
        assert httpclient.InferenceServerClient(settings.triton_url).is_server_ready()
    finally:
        late_close.join()
        triton.stop()
