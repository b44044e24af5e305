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
    try:
        model_dir = locate(args.model, args.model_dir, args.revision)
    except WeightsMissing as exc:
        raise EngineUnavailable(str(exc)) from None
    image = _read_image(args.image) if args.image else portrait()
    name = args.image or str(PORTRAITS["astronaut"].name)
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
