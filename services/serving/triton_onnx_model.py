"""The python-backend model that runs a model version's ONNX file with onnxruntime inside Triton.

Serving uploads this file as `1/model.py` next to `1/model.onnx` when TRITON_MODEL_BACKEND=python (the
local tritonserver has no onnxruntime backend). It runs in Triton's stub environment, not in serving's:
only numpy, onnxruntime and Triton's own `triton_python_backend_utils` are available there.
"""

import os

import onnxruntime
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        options = onnxruntime.SessionOptions()
        # Triton runs requests of other models in other stubs: one thread each keeps them from competing.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.inputs = [tensor.name for tensor in self.session.get_inputs()]
        self.outputs = [tensor.name for tensor in self.session.get_outputs()]

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                feed = {
                    name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.inputs
                }
                results = self.session.run(self.outputs, feed)
                pairs = zip(self.outputs, results, strict=True)
                tensors = [pb_utils.Tensor(name, value) for name, value in pairs]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            except Exception as exc:  # one bad request fails alone, with onnxruntime's reason
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))))
        return responses
