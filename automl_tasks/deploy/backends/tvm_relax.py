"""Apache TVM through Relax: an untuned build, or a MetaSchedule-tuned one under a time budget.

The ONNX model is imported with the Relax frontend for the feed's static shapes and built
for the host CPU (`Target.from_device`, so LLVM uses the CPU's vector units). With
`tune_seconds > 0`, MetaSchedule tunes the model's kernels first, in a child process
(`automl_tasks.deploy.backends.tvm_tune`): tuning runs for many seconds in native code,
and a crash there must cost the tuned build, not the caller's process. The tuning
database (JSON logs) lives in `options.work_dir` under a key of the model's hash, its
shapes and the target; a second compile of the same model finds the finished database
and builds from it without tuning again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from automl_tasks.deploy.backends.base import FP32, BackendOptions, Feed, Runner
from automl_tasks.deploy.backends.lowering import StandardOpsBackend

log = logging.getLogger(__name__)

#: written into a tuning folder once tuning finished; its presence means "reuse, do not tune"
TUNED_MARKER = "tuned.json"


def host_target(threads: int | None):
    """LLVM for this CPU (its -mcpu), with MetaSchedule's required core count."""
    import tvm

    host = dict(tvm.target.Target.from_device(tvm.cpu()).export())
    config = {k: host[k] for k in ("kind", "mtriple", "mcpu") if host.get(k)}
    config["num-cores"] = threads or os.cpu_count() or 1
    return tvm.target.Target(config)


def import_onnx(model: bytes, shapes: dict[str, tuple[int, ...]]):
    import onnx
    from tvm.relax.frontend.onnx import from_onnx

    return from_onnx(onnx.load_from_string(model), shape_dict=shapes, keep_params_in_input=False)


def for_tuning(module, target):
    """The module as MetaSchedule sees it: operators legalised to TIR and fused (the "zero" pipeline)."""
    from tvm import relax

    with target:
        return relax.get_pipeline("zero")(module)


def tuning_dir(work_dir: Path, model: bytes, shapes: dict[str, tuple[int, ...]], target) -> Path:
    """Where the tuning logs for this model, these shapes and this target are kept."""
    key = hashlib.sha256(model + json.dumps(sorted(shapes.items())).encode() + str(target).encode()).hexdigest()
    return work_dir / "tvm-tuning" / key[:24]


class TvmRunner(Runner):
    """One Relax VM per input-shape signature (Relax builds static shapes)."""

    def __init__(self, backend: TvmBackend, model: bytes, feed: dict[str, np.ndarray], options: BackendOptions) -> None:
        self.backend, self.model, self.options = backend, model, options
        self.names = list(feed)
        self.machines: dict[tuple, object] = {}
        self.tuning: dict[tuple, dict] = {}  # per shape: what the tuner reported (seconds, reused)
        self._build(feed)

    def _key(self, feed: Feed) -> tuple:
        return tuple((name, tuple(feed[name].shape)) for name in self.names)

    def _build(self, feed: Feed) -> None:
        import tvm
        from tvm import relax

        key = self._key(feed)
        shapes = dict(key)
        target = host_target(self.options.threads)
        module = import_onnx(self.model, shapes)
        if self.options.tune_seconds > 0:
            executable, report = self.backend.tuned_build(self.model, module, shapes, target, self.options)
            self.tuning[key] = report
        else:
            executable = tvm.compile(module, target=target)
        if self.compiled_size_bytes is None:
            with tempfile.TemporaryDirectory() as tmp:
                library = Path(tmp) / "model.so"
                executable.export_library(str(library))
                self.compiled_size_bytes = library.stat().st_size
        self.machines[key] = relax.VirtualMachine(executable, tvm.cpu())

    def run(self, feed: Feed) -> list[np.ndarray]:
        """Outputs for `feed`; a batch is padded to the next power of two (its last row
        repeated) and the answers cut back, so a server meets a few static shapes and
        builds each once, not one build per batch size on the request path."""
        import tvm

        rows = len(feed[self.names[0]])
        bucket = batch_bucket(rows)
        if bucket != rows:
            feed = {n: np.concatenate([feed[n], np.repeat(feed[n][-1:], bucket - rows, axis=0)]) for n in self.names}
        key = self._key(feed)
        if key not in self.machines:
            self._build(feed)
        out = self.machines[key]["main"](*[tvm.runtime.tensor(np.ascontiguousarray(feed[n])) for n in self.names])
        outputs = [o.numpy() for o in (list(out) if isinstance(out, tvm.ir.Array | list | tuple) else [out])]
        return [o[:rows] if bucket != rows and o.ndim and len(o) == bucket else o for o in outputs]


def batch_bucket(rows: int) -> int:
    """The static batch size a batch of `rows` runs at: the next power of two."""
    return 1 << max(0, rows - 1).bit_length()


class TvmBackend(StandardOpsBackend):
    """TVM Relax on the host CPU; `tune_seconds` > 0 asks for a MetaSchedule-tuned build."""

    name = "tvm"
    tolerances = {FP32: 1e-4}  # its own float32 kernels: rounding noise only

    def unavailable_reason(self) -> str | None:
        try:
            import tvm  # noqa: F401
            from tvm.relax.frontend.onnx import from_onnx  # noqa: F401
        except ImportError as exc:
            return f"apache-tvm with the Relax ONNX frontend is not installed ({exc})"
        return None

    def _compile(self, model: bytes, example_feed: dict[str, np.ndarray], options: BackendOptions) -> Runner:
        if options.threads is not None:
            import tvm

            tvm.get_global_func("runtime.config_threadpool")(1, options.threads)
        return TvmRunner(self, model, example_feed, options)

    def tuned_build(self, model: bytes, module, shapes: dict, target, options: BackendOptions):
        """Tune (or reuse the kept tuning logs), then build with the tuning database."""
        from tvm.s_tir import meta_schedule as ms

        if options.work_dir is None:
            raise ValueError("a tuned TVM build needs options.work_dir to keep its tuning logs")
        folder = tuning_dir(Path(options.work_dir), model, shapes, target)
        marker = folder / TUNED_MARKER
        if marker.exists():
            report = {**json.loads(marker.read_text()), "reused": True}
        else:
            report = {**tune_in_child(model, shapes, folder, options), "reused": False}
        module = for_tuning(module, target)
        database = ms.database.JSONDatabase(work_dir=str(folder), allow_missing=False)
        with target:
            executable = ms.relax_integration.compile_relax(database, module, target, None)
        log.info("tvm tuned build from %s (%s)", folder, report)
        return executable, report


def _kill_group(pid: int) -> None:
    """SIGKILL the tuner's process group (its worker processes with it); gone already is fine."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def tune_in_child(model: bytes, shapes: dict, folder: Path, options: BackendOptions) -> dict:
    """Run `tvm_tune` in a child process; its crash becomes a clear error here."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(model)
    command = [
        sys.executable,
        "-m",
        "automl_tasks.deploy.backends.tvm_tune",
        str(folder),
        json.dumps({"shapes": {k: list(v) for k, v in shapes.items()}}),
        str(options.tune_seconds),
        str(options.threads or 0),
    ]
    env = {**os.environ, "TVM_TRACEBACK_LIMIT": "8"}
    # one round always completes: about 2 minutes for a small MLP on two busy cores
    limit = options.tune_seconds * 3 + 600
    # its own session: MetaSchedule's builder and runner worker processes are the child's
    # children, and a timeout or crash must not leave them running (they hold the cores)
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    try:
        stdout, stderr = child.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        _kill_group(child.pid)
        child.communicate()
        raise RuntimeError(
            f"MetaSchedule tuning took over {limit:g} s and was stopped; tuning logs in {folder}"
        ) from None
    finally:
        _kill_group(child.pid)
    if child.returncode != 0:
        died = ""
        if child.returncode < 0:
            died = f" (killed by {signal.Signals(-child.returncode).name})"
        # a native crash prints a long C backtrace ("File ..." lines): keep the messages around it
        lines = [ln.strip() for ln in (stdout + stderr).splitlines() if ln.strip()]
        tail = " | ".join([ln for ln in lines if not ln.startswith("File ")][-3:])
        raise RuntimeError(
            f"MetaSchedule tuning failed: exit {child.returncode}{died}; tuning logs in {folder}; last output: {tail}"
        )
    return json.loads((folder / TUNED_MARKER).read_text())
