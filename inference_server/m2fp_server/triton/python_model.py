"""Triton Python-backend model: runs one repository model's file with ONNX Runtime or OpenVINO.

``m2fp triton`` copies this file as ``1/model.py`` of a generated repository
(``backend: "python"``, the original config's tensors, batcher and instances,
plus parameters naming the model file).  It runs inside Triton's Python-backend
stub, so a request costs one hop from tritonserver (shared memory) and no more:
PyTriton's own model proxy adds a ZeroMQ hop and a second process per request.

Triton's dynamic batcher hands over several requests at once: their tensors are
stacked on the batch axis, run once, and the outputs split back per request.
"""
import json
import sys

import numpy as np
import triton_python_backend_utils as pb_utils  # provided by the stub


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        cfg = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in cfg.get("parameters", {}).items()}
        for p in reversed(json.loads(params["m2fp_pythonpath"])):
            if p not in sys.path:
                sys.path.insert(0, p)
        from m2fp_server.triton.runtime import open_named
        self.run = open_named(params["m2fp_backend"], params["m2fp_model_file"], int(params["m2fp_threads"]),
                              params.get("m2fp_precision", "f32"))
        self.inputs = [i["name"] for i in cfg["input"]]
        self.outputs = [o["name"] for o in cfg["output"]]
        self.batching = int(cfg.get("max_batch_size", 0)) > 0

    def execute(self, requests: list) -> list:
        try:
            per_request = [{n: pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in self.inputs}
                           for r in requests]
            if self.batching and len(per_request) > 1:  # one run for the batch, split back per request
                outs = self.run({n: np.concatenate([f[n] for f in per_request]) for n in self.inputs})
                ends = np.cumsum([len(f[self.inputs[0]]) for f in per_request])
                results = [{k: v[end - len(f[self.inputs[0]]):end] for k, v in outs.items()}
                           for f, end in zip(per_request, ends)]
            else:
                results = [self.run(f) for f in per_request]
        except Exception as exc:  # noqa: BLE001 - every request gets the error, the model stays up
            err = pb_utils.TritonError(f"{type(exc).__name__}: {exc}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=err) for _ in requests]
        return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(k, np.ascontiguousarray(res[k]))
                                                          for k in self.outputs]) for res in results]
