"""The guided denoising loop as one graph on an inference runtime (OpenVINO or ONNX Runtime).

On a CPU a plan's time goes mostly to per-operator cost, not arithmetic: a warm-started realtime
plan runs ~2,000 small operators (convolutions of 16-128 channels over 4-32 steps, group norms,
Mish), each dispatched by PyTorch, and mkldnn pays a fixed cost per convolution call. Here the
whole loop of :func:`~diffuser_ros.planning.sampler.guided_sample` for one shape is traced once
(``make_fx``: the value gradient's backward pass becomes ordinary operators of the graph; weight
gradients are never computed), exported to ONNX and compiled by the runtime, which plans it as one
graph. The arithmetic is the same float32 arithmetic (results agree with PyTorch to ~1e-5).

A graph is specific to its shape: batch, the steps it runs, the conditioning layout, the guide
settings and the schedule. The planner builds one per shape it meets (a warm-started plan; a
cold plan runs in PyTorch) and keeps it; the ONNX file is cached on disk under a hash of the
weights and the shape (``$DIFFUSER_ROS_CACHE``, default ``~/.cache/diffuser_ros``), so a
restarted node compiles in seconds instead of exporting again (about a minute on this CPU).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import threading
from pathlib import Path

import numpy as np
import torch

from diffuser_ros.planning.sampler import Conditioning, GuideSettings, guided_sample

LOG = logging.getLogger(__name__)
BACKENDS = ("torch", "openvino", "onnxruntime")
EXPORT_VERSION = "1"  # part of the cache key: bump when the traced loop changes


def cache_dir() -> Path:
    return Path(os.environ.get("DIFFUSER_ROS_CACHE") or
                Path.home() / ".cache" / "diffuser_ros") / "loops"


def check_backend(backend: str) -> None:
    """``ValueError`` when ``backend``'s runtime is not installed (names the package)."""
    module = {"openvino": "openvino", "onnxruntime": "onnxruntime"}.get(backend)
    if module is None:
        return
    for name in (module, "onnx", "onnxscript"):
        try:
            __import__(name)
        except ImportError:
            raise ValueError(f"backend {backend!r} needs the Python package {name!r} "
                             "(pip install diffuser_ros[fast])") from None


class CompiledLoop:
    """``loop(x, step_noise, conditioning) -> (x, values)`` for one shape, on ``backend``."""

    def __init__(self, unet, objective, x: torch.Tensor, conditioning: Conditioning,
                 coefficients, guide: GuideSettings, step_noise: torch.Tensor,
                 timesteps: list[torch.Tensor], backend: str, threads: int) -> None:
        self.backend = backend
        self._layout = [(h, channels) for h, channels, _ in conditioning.entries]
        # Which steps are guided is decided in Python from the timesteps: plain ints, so that
        # tracing does not read values out of tensors.
        traced = dataclasses.replace(coefficients, timesteps=coefficients.timesteps.tolist())

        def loop(x, step_noise, *values):
            entries = [(h, channels, v) for (h, channels), v in zip(self._layout, values)]
            return guided_sample(unet, objective, x, Conditioning(entries), traced, guide,
                                 step_noise, timesteps)

        values = [v.expand(x.shape[0], -1).contiguous() for _, _, v in conditioning.entries]
        inputs = (x, step_noise, *values)
        path = cache_dir() / f"{self._key(unet, objective, inputs, coefficients, guide)}.onnx"
        if not path.exists():
            _export(loop, inputs, path)
        self._run = _load(path, backend, threads)

    def __call__(self, x: torch.Tensor, step_noise: torch.Tensor,
                 conditioning: Conditioning) -> tuple[torch.Tensor, torch.Tensor]:
        values = [v.expand(x.shape[0], -1) for _, _, v in conditioning.entries]
        arrays = [np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)
                  for t in (x, step_noise, *values)]
        out_x, out_values = self._run(arrays)
        return torch.from_numpy(out_x).to(x.device), torch.from_numpy(out_values).to(x.device)

    def _key(self, unet, objective, inputs, coefficients, guide) -> str:
        digest = hashlib.sha256(EXPORT_VERSION.encode())
        for module in (unet, objective.value_function):
            for tensor in module.state_dict().values():
                digest.update(tensor.detach().cpu().numpy().tobytes())
        for tensor in inputs:
            digest.update(str(tuple(tensor.shape)).encode())
        for field in coefficients.__dataclass_fields__:
            digest.update(getattr(coefficients, field).detach().cpu().numpy().tobytes())
        digest.update(repr((guide, [(h, c.tolist()) for h, c in self._layout],
                            objective.value_weight)).encode())
        return digest.hexdigest()[:24]


_EXPORT_LOCK = threading.Lock()


def _export(loop, inputs, path: Path) -> None:
    """Trace ``loop`` with its value gradient into plain operators and write it as ONNX."""
    from torch._decomp import core_aten_decompositions
    from torch.fx.experimental.proxy_tensor import make_fx

    aten = torch.ops.aten
    table = dict(core_aten_decompositions())
    table[aten.convolution_backward.default] = _convolution_input_grad
    with _EXPORT_LOCK:
        if path.exists():  # another planner of this process exported it meanwhile
            return
        LOG.info("exporting the guided loop to %s (once per shape; about a minute)", path)
        with torch.no_grad():
            graph = make_fx(loop, tracing_mode="real", decomposition_table=table)(*inputs)
        path.parent.mkdir(parents=True, exist_ok=True)
        program = torch.onnx.export(graph, tuple(inputs), dynamo=True, optimize=True,
                                    verbose=False)
        partial = path.with_suffix(".partial")
        program.save(str(partial), external_data=False)  # one file: renamed whole
        partial.rename(path)


def _convolution_input_grad(grad_output, input, weight, bias_sizes, stride, padding, dilation,
                            transposed, output_padding, groups, output_mask):
    """The input gradient of a 1-D convolution as a transposed convolution (the weights are
    frozen: their gradients are never asked for), so that the exported graph has no
    ``convolution_backward``."""
    if transposed or any(output_mask[1:]):
        raise NotImplementedError("only the input gradient of a plain convolution is exported")
    k = weight.shape[-1]
    length = (grad_output.shape[-1] - 1) * stride[0] - 2 * padding[0] + dilation[0] * (k - 1) + 1
    grad_input = torch.ops.aten.convolution(grad_output, weight, None, stride, padding, dilation,
                                            True, [input.shape[-1] - length], groups)
    return grad_input, None, None


def _load(path: Path, backend: str, threads: int):
    """``run(arrays) -> (x, values)`` on the runtime, float32, ``threads`` threads."""
    if backend == "openvino":
        import openvino as ov

        compiled = ov.Core().compile_model(str(path), "CPU", {
            "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
            # Not pinned: it would pin every planner (and process) to the same first core.
            "ENABLE_CPU_PINNING": False,
            # f32: this CPU would pick bf16, which moves the plans (differences of ~0.1)
            "INFERENCE_PRECISION_HINT": "f32"})
        request = compiled.create_infer_request()

        def run(arrays):
            # start_async + wait: the GIL is free while the graph runs, so planners in flight
            # on other threads (and the simulator) run meanwhile.
            request.start_async(arrays, share_inputs=True)
            request.wait()
            return tuple(np.array(request.get_output_tensor(i).data)
                         for i in range(len(compiled.outputs)))
        return run
    if backend == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        return lambda arrays: tuple(session.run(None, dict(zip(names, arrays))))
    raise ValueError(f"backend must be one of {BACKENDS[1:]}, got {backend!r}")
