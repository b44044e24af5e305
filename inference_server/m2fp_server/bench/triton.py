"""``m2fp bench --triton``: the M2FP model step in-process against Triton, for 1, 2, 4 and 8 streams.

Each stream is a closed loop (one frame in flight, the next sent when its result
is back) through the engines' asynchronous runner, which is how the server runs
M2FP for live streams (``--engine async -E engine=m2fp``, ``hybrid``):

* in-process: one engine, one model call at a time (two at once on the same
  cores only slow each other);
* Triton: the same engine with ``-E triton=``; the runner keeps one call per
  stream in flight, and Triton's dynamic batcher may stack them (on), or run
  them one by one (off: the same repository with the batcher removed).

Both sides run the same exported network file with the same runtime, so the
difference is the serving: gRPC, the batcher, PyTriton's Python backend.
Masks/s counts finished model results; latency is submit-to-result per frame.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Row:
    mode: str
    streams: int
    masks_per_s: float
    p50_ms: float
    p95_ms: float
    results: int


@dataclass
class Sample:
    """One slice of a row: each result's latency (ms) and the seconds measured."""

    latencies_ms: np.ndarray
    seconds: float


def combine(mode: str, streams: int, samples: list[Sample]) -> Row:
    flat = np.concatenate([s.latencies_ms for s in samples])
    if flat.size == 0:
        raise RuntimeError(f"{mode}, {streams} streams: no result; measure longer")
    return Row(mode, streams, flat.size / sum(s.seconds for s in samples), float(np.percentile(flat, 50)),
               float(np.percentile(flat, 95)), int(flat.size))


def run_rounds(engines: list[tuple[str, Any]], counts: list[int], seconds: float, rounds: int,
               measure_one: Any) -> list[Row]:
    """Every mode for one stream count, then the next count; all that ``rounds`` times, ``seconds / rounds``
    each: load from other work on the machine drifts, and this way it falls on all modes alike."""
    samples: dict[tuple[str, int], list[Sample]] = {}
    for r in range(rounds):
        for n in counts:
            for mode, engine in engines:
                samples.setdefault((mode, n), []).append(measure_one(engine, n, seconds / rounds, mode))
        if rounds > 1:
            print(f"round {r + 1}/{rounds} done", flush=True)
    rows: list[Row] = []
    for n in counts:
        for mode, _ in engines:
            rows.append(combine(mode, n, samples[(mode, n)]))
            _print(rows[-1], rows)
    return rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("--triton: in-process M2FP against Triton")
    g.add_argument("--triton", action="store_true", help="compare the M2FP model step in-process and on Triton")
    g.add_argument("--streams", default="1,2,4,8", help="stream counts (default 1,2,4,8)")
    g.add_argument("--size", type=int, default=256, help="M2FP short side (default 256)")
    g.add_argument("--triton-backend", choices=("onnxruntime", "openvino"), default="onnxruntime")
    g.add_argument("--model-dir", default=None, help="M2FP folder (default: the fetched weights, else random)")
    g.add_argument("--workdir", default=None, help="keep the exports here (default: a temporary folder)")
    g.add_argument("--triton-engine", choices=("m2fp", "rvm"), default="m2fp",
                   help="m2fp (default) or rvm (its recurrent states sent with every frame)")
    g.add_argument("--rvm-width", type=int, default=512, help="RVM input width (default 512)")
    g.add_argument("--rvm-downsample", type=float, default=0.5, help="RVM downsample_ratio (default 0.5)")
    g.add_argument("--triton-instances", type=int, default=1,
                   help="model instances on Triton (instance_group count); the threads are shared among them "
                        "(default 1)")
    g.add_argument("--triton-threads", type=int, default=0,
                   help="CPU threads Triton's instances share (default: as many as the in-process engine's)")
    g.add_argument("--rounds", type=int, default=1,
                   help="split each row's --seconds into this many slices, the modes taking turns (default 1)")


def stream_frames(n: int) -> list[np.ndarray]:
    """Different real frames per stream (the portrait mirrored/shifted), 16:9."""
    from ..samples import portrait
    img = portrait()
    h = img.shape[0]
    w = h * 16 // 9
    base = np.zeros((h, w, 3), np.uint8)
    base[:, :img.shape[1]] = img[:, :w]
    out = []
    for i in range(n):
        f = np.roll(base, (i * w) // max(1, n), axis=1)
        out.append(np.ascontiguousarray(f[:, ::-1]) if i % 2 else f)
    return out


def measure(engine: Any, streams: int, seconds: float, mode: str) -> "Sample":
    """``streams`` closed loops through one asynchronous runner for ``seconds`` (after one warm-up each)."""
    from ..engines.async_worker import AsyncRunner
    runner = AsyncRunner(engine, name="m2fp-bench")
    frames = stream_frames(streams)
    latencies: list[list[float]] = [[] for _ in range(streams)]
    stop_at = [0.0]
    t0 = [0.0]

    def go() -> None:  # runs once, before any loop is released
        t0[0] = time.perf_counter()
        stop_at[0] = t0[0] + seconds
    start = threading.Barrier(streams + 1, action=go)
    errors: list[BaseException] = []

    def loop(i: int) -> None:
        slot = runner.new_slot()
        try:
            runner.wait_job(slot, runner.submit(slot, 0, frames[i]), 600)  # warm-up, not counted
            start.wait()
            seq = 1
            while time.perf_counter() < stop_at[0]:
                t0 = time.perf_counter()
                runner.wait_job(slot, runner.submit(slot, seq, frames[i]), 600)
                if time.perf_counter() <= stop_at[0]:
                    latencies[i].append(time.perf_counter() - t0)
                seq += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)
            start.abort()
        finally:
            runner.drop(slot)
    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(streams)]
    for t in threads:
        t.start()
    try:
        start.wait()
    except threading.BrokenBarrierError:
        pass
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0[0]
    runner.close()
    if errors:
        raise RuntimeError(f"{mode}, {streams} streams: {errors[0]}") from errors[0]
    return Sample(np.array([x for lat in latencies for x in lat]) * 1e3, min(elapsed, seconds))


def _repo_without_batcher(repo: Path, out: Path) -> Path:
    """The same repository (model files hard-linked) with dynamic batching removed from each config."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(repo, out, copy_function=os.link)
    for cfg in out.glob("*/config.pbtxt"):
        text = cfg.read_text()
        cfg.unlink()  # a fresh file, not the hard-linked original
        cfg.write_text("\n".join(line for line in text.splitlines() if not line.startswith("dynamic_batching")) + "\n")
    return out


def measure_rvm(engine: Any, streams: int, seconds: float, mode: str) -> "Sample":
    """``streams`` closed loops, each its own clip and recurrent states, for ``seconds`` (after a warm-up).

    In-process: one worker takes the streams' frames in turn, as the server's
    worker runs ``rvm`` (a frame waits for the others' before it).  On Triton:
    one thread per stream, calls overlap and the batcher may stack them.
    """
    from ..samples import moving_frames
    base = moving_frames((640, 360), 30)  # (frames, h, w, 3): each stream its own mirrored or shifted clip
    clips = [np.ascontiguousarray(base[:, :, ::-1]) if i % 2 else np.roll(base, i * 40, axis=2)
             for i in range(streams)]
    ctxs = [engine.new_stream() for _ in range(streams)]
    latencies: list[list[float]] = [[] for _ in range(streams)]
    for i in range(streams):  # warm-up, not counted
        engine.infer(clips[i][0], ctxs[i], now=0.0)
    if not getattr(engine, "concurrent", False):
        t0 = time.perf_counter()
        since = [t0] * streams
        k = 1
        while time.perf_counter() < t0 + seconds:
            for i in range(streams):
                engine.infer(clips[i][k % len(clips[i])], ctxs[i], now=k / 30)
                now = time.perf_counter()
                if now <= t0 + seconds:
                    latencies[i].append(now - since[i])
                since[i] = now
            k += 1
    else:
        start = threading.Barrier(streams)
        errors: list[BaseException] = []

        def loop(i: int) -> None:
            try:
                start.wait()
                stop_at = time.perf_counter() + seconds
                k = 1
                while time.perf_counter() < stop_at:
                    t = time.perf_counter()
                    engine.infer(clips[i][k % len(clips[i])], ctxs[i], now=k / 30)
                    if time.perf_counter() <= stop_at:
                        latencies[i].append(time.perf_counter() - t)
                    k += 1
            except BaseException as exc:  # noqa: BLE001 - reported by the caller
                errors.append(exc)
                start.abort()
        threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(streams)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if errors:
            raise RuntimeError(f"{mode}, {streams} streams: {errors[0]}") from errors[0]
    return Sample(np.array([x for lat in latencies for x in lat]) * 1e3, seconds)


def _bench_setup(args: argparse.Namespace) -> tuple[str, list[int], Path]:
    """What both benchmarks need first: the Python that runs Triton, the stream counts, the work folder."""
    from ..triton.launch import triton_python
    python = triton_python()
    if python is None:
        raise ValueError("no Python with the [triton] extra: python -m venv .venv-triton && "
                         ".venv-triton/bin/pip install -e '.[triton]' (docs/triton.md)")
    counts = [int(c) for c in args.streams.split(",")]
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="m2fp-triton-bench-"))
    return python, counts, work


def run_rvm_bench(args: argparse.Namespace) -> int:
    """RVM in-process against RVM on Triton with its states sent explicitly, as for M2FP."""
    from .server import free_port
    from .. import rvm_weights
    from ..engines.m2fp.exported import default_threads
    from ..engines.rvm import RVMEngine, model_shape
    from ..engines.rvm_lowres import FullResStep
    from ..samples import moving_frames
    from ..triton.launch import LocalTriton
    from ..triton.repository import RepoSettings
    from ..triton.rvm_repository import export_rvm_repository
    python, counts, work = _bench_setup(args)
    repo = work / "repo-rvm"
    threads = default_threads()
    triton_threads = args.triton_threads or threads
    w, h = model_shape((16 * 64, 9 * 64), args.rvm_width)
    sw, sh = FullResStep(w, h, args.rvm_downsample).small
    export_rvm_repository(rvm_weights.locate(), repo, args.rvm_width, args.rvm_downsample,
                          RepoSettings(instances=args.triton_instances),
                          list(moving_frames((640, 360), 4)), threads)
    no_batcher = _repo_without_batcher(repo, work / "repo-rvm-no-batching")
    opts = {"width": args.rvm_width, "downsample": args.rvm_downsample, "tuned": False}
    with contextlib.ExitStack() as stack:
        local = RVMEngine(threads=threads, **opts)
        stack.callback(local.close)
        shapes = local.runner_for((w, h)).shapes
        state_kb = sum(int(np.prod(s)) for s in shapes) * 4 / 1024
        print(f"RVM {w}x{h} ds{args.rvm_downsample:g}, onnxruntime fp32, {threads} threads (on Triton: "
              f"{args.triton_instances} instance(s) sharing {triton_threads}), {args.seconds:.0f} s "
              f"per row; {os.cpu_count()} CPUs; explicit state: {state_kb:.0f} KB each way per frame "
              f"(the frame, uint8: {3 * w * h / 1024:.0f} KB; back, the alpha's gain and offset: "
              f"{2 * sw * sh * 4 / 1024:.0f} KB, against {w * h * 4 / 1024:.0f} KB for the alpha itself)", flush=True)
        engines: list[tuple[str, Any]] = [("in-process", local)]
        for mode, folder in (("triton, batching on", repo), ("triton, batching off", no_batcher)):
            triton = stack.enter_context(LocalTriton(folder, free_port(), free_port(), free_port(), python=python,
                                                     threads=triton_threads,
                                                     log_file=work / f"triton-{folder.name}.log"))
            remote = RVMEngine(triton=triton.url, triton_timeout_s=600, **opts)
            stack.callback(remote.close)
            engines.append((mode, remote))
        rows = run_rounds(engines, counts, args.seconds, args.rounds, measure_rvm)
    _summary(rows, "frame")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def run_triton_bench(args: argparse.Namespace) -> int:
    if args.triton_engine == "rvm":
        return run_rvm_bench(args)
    from .server import free_port
    from ..engines.m2fp.engine import M2FPEngine
    from ..engines.m2fp.exported import default_threads, export, find_export
    from ..engines.m2fp.frames import Canvas
    from ..engines.m2fp.network import load_core
    from .m2fp import _model_dir
    from ..samples import portrait
    from ..triton.launch import LocalTriton
    from ..triton.repository import RepoSettings, export_repository, model_name
    python, counts, work = _bench_setup(args)
    work.mkdir(parents=True, exist_ok=True)
    model_dir, source = _model_dir({"model_dir": args.model_dir}, work)
    backend, size = args.triton_backend, args.size
    canvas = Canvas.for_short_side(size)
    threads = default_threads()
    repo = work / "repo"
    core = cfg = None
    have_repo = (repo / model_name(canvas) / "config.pbtxt").exists()
    if not have_repo or find_export(model_dir, canvas, backend, "f32") is None:
        print(f"exporting {source} at short side {size} ({backend}) for both sides; this takes a few minutes",
              flush=True)
        core, cfg = load_core(model_dir, threads)
    if not have_repo:
        assert core is not None and cfg is not None
        export_repository(model_dir, repo, size, RepoSettings(backend, instances=args.triton_instances), portrait(),
                          "astronaut", threads=threads,
                          core=core, class_names=cfg.class_names)
    if find_export(model_dir, canvas, backend, "f32") is None:
        assert core is not None and cfg is not None
        export(model_dir, size, backend, portrait(), "astronaut", threads=threads, core=core,
               num_classes=len(cfg.class_names))
    del core
    no_batcher = _repo_without_batcher(repo, work / "repo-no-batching")
    print(f"M2FP ({source}) short side {size}, canvas {canvas.key}, {backend}, {threads} threads, "
          f"{args.seconds:.0f} s per row; {os.cpu_count()} CPUs", flush=True)
    with contextlib.ExitStack() as stack:
        local = M2FPEngine(model_dir=str(model_dir), size=size, runtime=backend, threads=threads)
        stack.callback(local.close)
        engines: list[tuple[str, Any]] = [("in-process", local)]
        for mode, folder in (("triton, batching on", repo), ("triton, batching off", no_batcher)):
            triton = stack.enter_context(LocalTriton(folder, free_port(), free_port(), free_port(), python=python,
                                                     threads=args.triton_threads or threads,
                                                     log_file=work / f"triton-{folder.name}.log"))
            remote = M2FPEngine(size=size, triton=triton.url, triton_timeout_s=600)
            stack.callback(remote.close)
            engines.append((mode, remote))
        rows = run_rounds(engines, counts, args.seconds, args.rounds, measure)
    _summary(rows)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _print(row: Row, rows: list[Row]) -> None:
    if len(rows) == 1:
        print(f"{'mode':<22} {'streams':>7} {'masks/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'results':>8}")
    print(f"{row.mode:<22} {row.streams:>7} {row.masks_per_s:>8.2f} {row.p50_ms:>8.0f} {row.p95_ms:>8.0f} "
          f"{row.results:>8}", flush=True)


def _summary(rows: list[Row], what: str = "mask") -> None:
    def find(mode: str, n: int) -> Row | None:
        return next((r for r in rows if r.mode == mode and r.streams == n), None)
    base, on = find("in-process", 1), find("triton, batching on", 1)
    if base and on:
        print(f"overhead per {what} through Triton (1 stream, p50): {on.p50_ms - base.p50_ms:+.1f} ms")
    for n in (4, 8):
        b, t = find("in-process", n), find("triton, batching on", n)
        if b and t:
            print(f"{n} streams: Triton {t.masks_per_s:.2f} {what}s/s vs in-process {b.masks_per_s:.2f} "
                  f"(x{t.masks_per_s / b.masks_per_s:.2f})")
