"""``m2fp export``: make the fast runtime for one input size, checked against torch first.

The export is stored next to the weights (``<model dir>/m2fp-obs-exports/``) and
used by the m2fp engine automatically.  f32 must match torch within 1e-3 in the
class logits on a real picture or nothing is saved.  ``--precision bf16``
(OpenVINO) is faster on CPUs with bf16 instructions and reports how many pixels
keep the f32 label on the picture you pass with ``--image``.
"""
from __future__ import annotations

import argparse

from ..errors import BadInput, MissingFile


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..weights import DEFAULT_MODEL, MODELS  # stdlib only: keeps `m2fp --help` fast
    p.add_argument("--size", type=int, default=256, help="short side in pixels: 256 (default), 384, 512")
    p.add_argument("--runtime", choices=("openvino", "onnxruntime"), default="openvino", help="default: openvino")
    p.add_argument("--precision", choices=("f32", "bf16"), default="f32",
                   help="f32 (default); bf16 (OpenVINO only, needs --image)")
    p.add_argument("--image", default=None,
                   help="picture to check the export on (default: the shipped astronaut portrait)")
    p.add_argument("--model", choices=sorted(MODELS), default=DEFAULT_MODEL)
    p.add_argument("--model-dir", default=None, help="folder with configuration.json and pytorch_model.pt")
    p.add_argument("--revision", default=None)
    p.add_argument("--portrait", action="store_true", help="9:16 canvas instead of 16:9")
    p.add_argument("--threads", type=int, default=None)
    t = p.add_argument_group("Triton model repository (instead of the local export)")
    t.add_argument("--triton-repo", metavar="DIR", default=None,
                   help="write (or update) a Triton model repository: DIR/m2fp_<canvas>/config.pbtxt + 1/model.*")
    t.add_argument("--triton-backend", choices=("onnxruntime", "openvino"), default="onnxruntime",
                   help="Triton backend for the model (default onnxruntime: also runs on a GPU box)")
    t.add_argument("--max-batch", type=int, default=8, help="max_batch_size (default 8)")
    t.add_argument("--batch-delay-us", type=int, default=2000,
                   help="dynamic batching: wait this long for more streams' frames (default 2000)")
    t.add_argument("--no-dynamic-batching", action="store_true", help="leave Triton's dynamic batcher off")
    t.add_argument("--instances", type=int, default=1, help="model instances (instance_group count)")
    t.add_argument("--instance-kind", choices=("KIND_CPU", "KIND_GPU", "KIND_AUTO"), default="KIND_CPU")
    t.add_argument("--triton-models", default="m2fp,rvm",
                   help="which models to write (default m2fp,rvm; rvm only when fetched: m2fp fetch-weights rvm)")
    t.add_argument("--rvm-width", type=int, default=None,
                   help="RVM input width for 16:9 frames (default: the engine's tuned or default width)")
    t.add_argument("--rvm-downsample", type=float, default=None, help="RVM downsample_ratio (default: the engine's)")


def _read_image(path: str):  # -> np.ndarray
    import cv2
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise MissingFile(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def run(args: argparse.Namespace) -> int:
    from ..engines.base import EngineUnavailable
    from ..engines.m2fp.exported import export
    from ..samples import PORTRAITS, portrait
    from ..weights import WeightsMissing, locate
    if args.precision != "f32" and args.image is None:
        raise BadInput("--precision bf16 needs --image PICTURE: its label-map agreement with f32 is reported "
                         "on a picture you choose")
    wanted = {m.strip() for m in (args.triton_models or "").split(",") if m.strip()}
    if args.triton_repo and not wanted <= {"m2fp", "rvm"} or not wanted:
        raise BadInput(f"--triton-models takes m2fp and/or rvm, got {args.triton_models!r}")
    if args.triton_repo and "rvm" in wanted:
        code = _triton_rvm(args, required=wanted == {"rvm"})
        if "m2fp" not in wanted:
            return code
    try:
        model_dir = locate(args.model, args.model_dir, args.revision)
    except WeightsMissing as exc:
        raise EngineUnavailable(str(exc)) from None
    image = _read_image(args.image) if args.image else portrait()
    name = args.image or str(PORTRAITS["astronaut"].name)
    if args.triton_repo:
        return _triton_repo(args, model_dir, image, name)
    print(f"exporting {model_dir} at short side {args.size} to {args.runtime} ({args.precision}); "
          f"this takes a minute or two")
    path, rec = export(model_dir, args.size, args.runtime, image, name, args.precision, args.portrait,
                       args.threads)
    print(f"check on {name}: max |d logits| {rec.max_logit_diff:.2e}, max |d mask logits| "
          f"{rec.max_mask_diff:.2e} vs torch f32")
    if rec.label_agreement is not None:
        print(f"{args.precision}: {rec.label_agreement * 100:.2f} % of pixels keep the f32 label on {name}")
    print(f"saved {path}; `m2fp serve --engine m2fp -E size={args.size}` uses it")
    return 0


def _triton_repo(args: argparse.Namespace, model_dir, image, name: str) -> int:
    from ..triton.repository import RepoSettings, export_repository
    if args.precision != "f32":
        raise ValueError("Triton repositories are exported in f32")
    settings = RepoSettings(args.triton_backend, args.max_batch, args.batch_delay_us, not args.no_dynamic_batching,
                            args.instances, args.instance_kind)
    settings.validate()
    print(f"exporting {model_dir} at short side {args.size} into the Triton repository {args.triton_repo} "
          f"({args.triton_backend}); this takes a minute or two")
    path, rec = export_repository(model_dir, args.triton_repo, args.size, settings, image, name, args.portrait,
                                  args.threads)
    print(f"check on {name} (batch of {rec.batch_checked}): max |d class probability| {rec.max_prob_diff:.2e} "
          f"vs torch f32")
    print(f"saved {path}; serve it with `m2fp triton --model-repo {args.triton_repo}` (or the official container, "
          f"docs/triton.md) and run `m2fp serve --engine m2fp -E size={args.size} -E triton=grpc://HOST:8001`")
    return 0


def _triton_rvm(args: argparse.Namespace, required: bool) -> int:
    """RVM into the same repository, when its model is fetched (an error only if RVM alone was asked for)."""
    from .. import rvm_weights
    from ..engines.rvm_choice import RVMSetting, load_choice
    from ..samples import moving_frames
    from ..triton.repository import RepoSettings
    from ..triton.rvm_repository import export_rvm_repository
    try:
        source = rvm_weights.locate()
    except rvm_weights.RVMWeightsMissing as exc:
        if required:
            raise
        print(f"no RVM model in the repository: {exc}")
        return 0
    base = load_choice() or RVMSetting()
    width = args.rvm_width or base.width
    ds = args.rvm_downsample if args.rvm_downsample is not None else base.downsample
    settings = RepoSettings("onnxruntime", args.max_batch, args.batch_delay_us, not args.no_dynamic_batching,
                            args.instances, args.instance_kind)
    frames = list(moving_frames((16 * 40, 9 * 40), 6))
    path, rec = export_rvm_repository(source, args.triton_repo, width, ds, settings, frames, args.threads or 2)
    print(f"check of two streams batched over {rec.frames_checked} frames: max |d alpha| {rec.max_alpha_diff:.2e}, "
          f"max |d state| {rec.max_state_diff:.2e} vs the in-process graph")
    print(f"saved {path}; run `m2fp serve --engine rvm -E width={rec.width} -E downsample={rec.downsample:g} "
          f"-E triton=grpc://HOST:8001`")
    return 0
