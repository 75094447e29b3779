"""Inference engines: what runs an extraction's forward pass (`extraction.engine`).

The forward pass bounds extraction (the data pipeline keeps up with it), and on CPUs plain
PyTorch is not the fastest way to run a fixed network: `docs/benchmarks.md` measures the engines
side by side. Every engine runs the same `ScaleCodes` module (the network up to its highest tap
and the pooling of its `conv` map) and gives the same codes within `TOLERANCE`, so the engine
is not part of a code set's identity (it is recorded in its meta.json):

- `torch`: PyTorch eager, channels_last (the faster kernels on CPU and GPU); with a reduced
  `precision` (`bf16-mixed`, `16-mixed`: Lightning's autocast, for GPUs) the codes are their
  own code set, their compute dtype recorded and part of the key;
- `compile`: `torch.compile` of the module (a compilation per input shape, tens of seconds);
- `onnxruntime`: the module exported once with `torch.onnx.export` (an artifact of the cache,
  keyed by a digest of the weights, the taps, the pooling and the input size, checked against
  PyTorch when it is made) and run by an `onnxruntime.InferenceSession` on the CPU with one
  thread per available core. A network that does not export, or whose export does not agree,
  is extracted with `torch`, and the log says so once;
- `auto`: `onnxruntime` where the forward pass runs on the CPU in float32, else `torch`.

The default stays `torch` until the end-to-end measurement in `docs/benchmarks.md` decides.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ncl.cache import Artifact
from ncl.models.descriptor import ScaleCodes

log = logging.getLogger(__name__)

ENGINES = ("auto", "torch", "compile", "onnxruntime")
# fp32 engines agree with torch within this, as max abs difference of L2-normalised codes
TOLERANCE = 1e-4
ONNX_FILE = "model.onnx"
# onnxruntime's idle threads sleep rather than spin: the loader's workers decode on the same
# cores, and a spinning thread takes their time (`benchmarks.extraction --spinning`)
SPINNING = False
EXPORTER_LOGGERS = ("onnx_ir", "onnxscript", "torch.onnx", "torch.export")
# the dtype each of Lightning's precision settings computes in (float32 unless reduced)
COMPUTE_DTYPES = {
    "bf16-mixed": "bfloat16",
    "bf16-true": "bfloat16",
    "bf16": "bfloat16",
    "16-mixed": "float16",
    "16-true": "float16",
    "16": "float16",
    "64-true": "float64",
    "64": "float64",
}


class EngineError(RuntimeError):
    """An engine cannot run a network (the export fails or its codes disagree with torch's)."""


def compute_dtype(precision: str) -> str:
    """The dtype the forward pass computes in under Lightning's `precision` setting."""
    return COMPUTE_DTYPES.get(str(precision), "float32")


def on_cpu(accelerator: str) -> bool:
    """Whether Lightning's `accelerator` setting runs on the CPU here."""
    return accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())


def resolve_engine(engine: str, accelerator: str, precision: str) -> str:
    """The engine `engine` means here (`auto`: onnxruntime on a CPU in float32, else torch);
    onnxruntime runs on the CPU in float32 only."""
    if engine not in ENGINES:
        raise ValueError(f"extraction.engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "auto":
        fp32 = compute_dtype(precision) == "float32"
        return "onnxruntime" if on_cpu(accelerator) and fp32 else "torch"
    if engine == "onnxruntime" and compute_dtype(precision) != "float32":
        raise ValueError(
            f"extraction.engine=onnxruntime computes in float32; extraction.precision="
            f"{precision} needs extraction.engine=torch"
        )
    return engine


def cores() -> int:
    """The CPU cores this process may run on (a container's or taskset's share, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def weights_digest(module: nn.Module) -> str:
    """A digest of every parameter and buffer (names, shapes, values): the exported model is
    remade when any weight changes, whatever file or registry name they came from."""
    h = hashlib.sha1()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()[:16]


class ChannelsLast(nn.Module):
    """`module` with its weights and inputs in channels_last, the faster kernels' layout."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module.to(memory_format=torch.channels_last)

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        return self.module(images.contiguous(memory_format=torch.channels_last))


class OnnxCodes(nn.Module):
    """The exported module, one onnxruntime session per input size: images -> codes tuple."""

    def __init__(self, sessions: dict[int, object]) -> None:
        super().__init__()
        self.sessions = sessions

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        session = self.sessions[images.shape[-1]]
        array = np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)
        return tuple(torch.from_numpy(o) for o in session.run(None, {"images": array}))


def onnx_session(path: Path, threads: int):
    """An onnxruntime session of `path` on the CPU with `threads` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", str(int(SPINNING)))
    options.log_severity_level = 3  # errors only: its start-up notes are noise in a job's log
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def export_onnx(module: ScaleCodes, size: int, target: Path) -> dict[str, Any]:
    """Export `module` for size x size images and any batch size into `target`/model.onnx, and
    check it against PyTorch on random images; an `EngineError` says why it cannot be used.

    The TorchScript exporter first (seconds; deprecated but far faster on networks of many small
    layers), `torch.export`'s where it fails (AlexNet's adaptive pooling on a dynamic batch)."""
    example = torch.randn(2, 3, size, size)
    path = target / ONNX_FILE
    axes = {name: {0: "batch"} for name in ["images", *module.taps]}
    failures = []
    for dynamo in (False, True):
        options: dict[str, Any] = (
            {"dynamic_shapes": ({0: torch.export.Dim("batch")},), "external_data": False}
            if dynamo
            else {"dynamic_axes": axes}
        )
        try:
            with warnings.catch_warnings(), no_stdout(), quiet(EXPORTER_LOGGERS):
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    module,
                    (example,),
                    str(path),
                    input_names=["images"],
                    output_names=list(module.taps),
                    dynamo=dynamo,
                    **options,
                )
            break
        except Exception as e:  # the exporters fail in many ways, each a reason to fall back
            failures.append(f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
    else:
        raise EngineError(f"torch.onnx.export failed: {'; '.join(failures)}")
    return {"exporter": "dynamo" if dynamo else "torchscript", **check_export(module, path, size)}


@contextmanager
def no_stdout() -> Iterator[None]:
    """Standard output (the file descriptor: the exporters print progress from Python and, on
    failure, whole graphs from C++) to /dev/null while the block runs."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            with redirect_stdout(null):
                yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@contextmanager
def quiet(loggers: Sequence[str]) -> Iterator[None]:
    """`loggers` at WARNING while the block runs: the exporter's passes log every step at INFO."""
    levels = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def check_export(module: ScaleCodes, path: Path, size: int) -> dict[str, float]:
    """The largest difference between the exported model's and PyTorch's L2-normalised codes
    on random images (a batch size the export did not see); more than `TOLERANCE`: an error."""
    images = torch.randn(3, 3, size, size)
    with torch.inference_mode():
        expected = module(images)
    got = OnnxCodes({size: onnx_session(path, cores())})(images)
    difference = max(
        float((F.normalize(a.float(), dim=-1) - F.normalize(b, dim=-1)).abs().max())
        for a, b in zip(expected, got, strict=True)
    )
    if not difference <= TOLERANCE:
        raise EngineError(f"its codes differ from torch's by {difference:.2g} > {TOLERANCE:g}")
    return {"max_abs_difference": difference}


def onnx_codes(
    module: ScaleCodes, sizes: Sequence[int], cache_dir: Path, identity: dict
) -> OnnxCodes:
    """`module` exported once per input size (an artifact in `cache_dir`, remade when the
    weights, the taps, the pooling or the size change) and loaded into onnxruntime."""
    weights = weights_digest(module)
    sessions = {}
    for size in sizes:
        inputs = {**identity, "weights": weights, "size": size, "torch": torch.__version__}
        artifact = Artifact(cache_dir / f"{size}", inputs)

        def export(tmp: Path, size: int = size) -> dict[str, Any]:
            # said by the one process that exports (the others of a DDP run wait for it)
            log.info("exporting %s to ONNX for %d px images (once)", identity.get("model"), size)
            return export_onnx(module, size, tmp)

        path = artifact.get(export, "ONNX export")
        sessions[size] = onnx_session(path / ONNX_FILE, cores())
    return OnnxCodes(sessions)


def engine_module(
    engine: str, module: ScaleCodes, sizes: Sequence[int], cache_dir: Path, identity: dict
) -> tuple[nn.Module, str]:
    """The module that runs `module` with the (resolved) `engine`, and the engine it really
    runs: a network onnxruntime cannot run goes to torch, with one warning saying why."""
    module = module.eval()
    if engine == "onnxruntime":
        try:
            return onnx_codes(module, sizes, cache_dir, identity), engine
        except Exception as e:
            log.warning(
                "%s does not run in onnxruntime (%s); extracting with engine=torch",
                identity.get("model"),
                e,
            )
            engine = "torch"
    if engine == "compile":
        return torch.compile(ChannelsLast(module)), engine
    return ChannelsLast(module), engine
