"""ModelScope's M2FP network built from a model folder, and the traced core.

The core is the part worth exporting: normalise, backbone, pixel decoder,
transformer decoder -> (class logits, mask logits).  ModelScope's ``forward``
wraps it in dict plumbing and its pipeline adds full-resolution per-instance
post-processing; neither belongs in a per-frame path.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from ...errors import M2fpError
from ...weights import WEIGHTS_FILE
from .config import M2FPConfig, read_config
from .modelscope_compat import m2fp_class

log = logging.getLogger(__name__)


class CheckpointError(M2fpError, RuntimeError):
    """pytorch_model.pt does not fit the architecture in configuration.json."""


class M2FPCore(nn.Module):
    """(1, 3, H, W) float RGB 0..255, H and W multiples of 32 -> (logits (1,Q,K+1), masks (1,Q,H/4,W/4))."""

    backbone: nn.Module
    head: nn.Module
    mean: torch.Tensor
    inv_std: torch.Tensor

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.backbone = cast(nn.Module, model.backbone)
        self.head = cast(nn.Module, model.sem_seg_head)
        mean, std = cast(torch.Tensor, model.pixel_mean), cast(torch.Tensor, model.pixel_std)
        self.register_buffer("mean", mean.view(1, 3, 1, 1).clone(), persistent=False)
        self.register_buffer("inv_std", (1.0 / std).view(1, 3, 1, 1).clone(), persistent=False)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head(self.backbone((image - self.mean) * self.inv_std))
        return out["pred_logits"], out["pred_masks"]


def construct(cfg: M2FPConfig) -> nn.Module:
    """ModelScope's M2FP with random weights, in eval mode."""
    cls = m2fp_class()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = cls(str(cfg.model_dir), **cfg.build_kwargs())
    return model.eval()


def load_weights(model: nn.Module, path: Path) -> None:
    """Load ``{'model': state_dict}`` (ModelScope's format) with safe unpickling first.

    Like ModelScope, entries whose shape differs are skipped -- but loudly, and a
    checkpoint that leaves most of the network untouched is an error rather than
    a silently random model.
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickles holding non-tensor objects
        log.warning("%s needs full unpickling (%s); loading it as ModelScope does", path,
                    str(exc).splitlines()[0][:120])
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a dict with a 'model' state dict, got {type(ckpt).__name__}")
    target = model.state_dict()
    usable = {k: v for k, v in state.items()
              if k in target and isinstance(v, torch.Tensor) and v.shape == target[k].shape}
    skipped = sorted(set(state) - set(usable))
    missing = sorted(set(target) - set(usable))
    if skipped:
        log.warning("%d checkpoint entries unused (first: %s)", len(skipped), ", ".join(skipped[:5]))
    if missing:
        log.warning("%d model entries not in the checkpoint (first: %s)", len(missing), ", ".join(missing[:5]))
    if len(usable) < 0.9 * len(target):
        raise CheckpointError(f"{path} covers only {len(usable)} of {len(target)} tensors of the M2FP "
                              f"architecture in configuration.json; wrong file or model?")
    model.load_state_dict(usable, strict=False)


def load_core(model_dir: str | Path, threads: int | None = None) -> tuple[M2FPCore, M2FPConfig]:
    """The exportable network with the folder's weights, ready for inference."""
    if threads:
        torch.set_num_threads(threads)
    cfg = read_config(model_dir)
    model = construct(cfg)
    load_weights(model, Path(model_dir) / WEIGHTS_FILE)
    return M2FPCore(model).eval(), cfg


def run_core(core: M2FPCore, image: Any) -> tuple[Any, Any]:
    """numpy (1,3,H,W) float32 -> numpy (logits, masks)."""
    with torch.inference_mode():
        logits, masks = core(torch.from_numpy(image))
    return logits.numpy(), masks.numpy()


class M2FPServing(nn.Module):
    """The core plus M2FP's semantic step, for serving over a network (``m2fp export --triton-repo``).

    (N, H, W, 3) uint8 canvas and (N, 2) int32 frame size on it -> (N, C, H/4, W/4)
    class probabilities, normalised per pixel: what ``frames.semantic_probs``
    computes on the edge, before its crop.  The frame goes over the wire as
    uint8 (a quarter of the float canvas) and the answer is C class maps, not
    Q query masks (Q=100 > C=20): 1.5 MB + 3.1 MB per frame become 0.4 MB +
    0.6 MB at short side 256.  Outside the frame the canvas counts as the mean
    colour, as ``frames.place`` pads it, so the edge pads with anything.
    """

    rows: torch.Tensor
    cols: torch.Tensor

    def __init__(self, core: M2FPCore, canvas_hw: tuple[int, int], num_classes: int) -> None:
        super().__init__()
        self.core = core
        self.num_classes = num_classes
        h, w = canvas_hw
        self.register_buffer("rows", torch.arange(h, dtype=torch.int32).view(1, 1, h, 1), persistent=False)
        self.register_buffer("cols", torch.arange(w, dtype=torch.int32).view(1, 1, 1, w), persistent=False)

    def forward(self, image: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).to(torch.float32)
        inside = (self.rows < size[:, 0].view(-1, 1, 1, 1)) & (self.cols < size[:, 1].view(-1, 1, 1, 1))
        x = (x - self.core.mean) * self.core.inv_std * inside.to(torch.float32)  # padding = mean = 0 here
        out = self.core.head(self.core.backbone(x))
        cls = out["pred_logits"].softmax(-1)[..., :self.num_classes]  # (N, Q, C)
        sig = out["pred_masks"].sigmoid()  # (N, Q, h, w)
        sem = torch.einsum("nqc,nqhw->nchw", cls, sig)
        return sem / sem.sum(dim=1, keepdim=True).clamp_min(1e-6)
