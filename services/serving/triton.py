"""Triton over gRPC (tritonclient.grpc.aio): load and unload models through the model-repository
extension, and infer. Errors become three kinds serving answers differently."""

from __future__ import annotations

import numpy as np
import tritonclient.grpc.aio as grpcaio
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.utils import InferenceServerException

from services.common.domain.preprocess import Tensor

from .routing import ServedModel

_UNREACHABLE = {"StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.CANCELLED"}


class TritonError(Exception):
    """Triton answered an error for this request (a bad tensor, the model failing)."""


class TritonUnavailable(TritonError):
    """Triton could not be reached, or did not answer in time."""


class ModelNotLoaded(TritonError):
    """Triton does not have the model (it restarted, or unloaded it)."""


def _translate(exc: InferenceServerException) -> TritonError:
    status = exc.status() or ""
    message = exc.message() or str(exc)
    if status in _UNREACHABLE:
        return TritonUnavailable(f"Triton is unreachable: {message}")
    if status == "StatusCode.NOT_FOUND" or "is not found" in message or "not ready" in message:
        return ModelNotLoaded(message)
    return TritonError(message)


class Triton:
    def __init__(self, url: str) -> None:
        self.url = url
        self.client = grpcaio.InferenceServerClient(url)

    async def close(self) -> None:
        await self.client.close()

    async def server_ready(self, timeout_s: float = 2.0) -> bool:
        try:
            return bool(await self.client.is_server_ready(client_timeout=timeout_s))
        except InferenceServerException:
            return False

    async def model_ready(self, name: str, timeout_s: float = 5.0) -> bool:
        try:
            return bool(await self.client.is_model_ready(name, client_timeout=timeout_s))
        except InferenceServerException as exc:
            raise _translate(exc) from None

    async def load(self, name: str, config: str, files: dict[str, bytes], timeout_s: float = 120.0) -> None:
        try:
            await self.client.load_model(name, config=config, files=files, client_timeout=timeout_s)
        except InferenceServerException as exc:
            raise _translate(exc) from None

    async def unload(self, name: str, timeout_s: float = 30.0) -> None:
        try:
            await self.client.unload_model(name, client_timeout=timeout_s)
        except InferenceServerException as exc:
            raise _translate(exc) from None

    async def infer(self, model: ServedModel, tensor: Tensor, timeout_s: float) -> dict[str, Tensor]:
        """The model's answer to one input tensor: its requested outputs by name. A graph without a batch
        dimension (torchvision's exports) gets the image alone."""
        if len(model.input.shape) == tensor.ndim - 1:
            tensor = tensor[0]
        request = InferInput(model.input.name, list(tensor.shape), model.input.datatype)
        request.set_data_from_numpy(tensor)
        outputs = [InferRequestedOutput(name) for name in model.outputs]
        try:
            result = await self.client.infer(
                model.triton_name, [request], outputs=outputs, client_timeout=timeout_s
            )
        except InferenceServerException as exc:
            raise _translate(exc) from None
        answer = {name: result.as_numpy(name) for name in model.outputs}
        missing = [name for name, value in answer.items() if not isinstance(value, np.ndarray)]
        if missing:
            raise TritonError(f"Triton's answer lacks outputs {missing}")
        return answer
