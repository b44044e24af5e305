"""Import ModelScope's M2FP model code without mmcv, torchvision or timm.

ModelScope's M2FP modules are used as they are (a dependency, not a copy).  Three
imports on their way drag in packages M2FP never calls:

* ``maskdino/ms_deform_attn.py`` imports two names from ``mmcv.ops`` -> served by
  :mod:`.msdeform_attn` (registered only when mmcv is not installed);
* ``m2fp_decoder.py`` imports layers from the DDColor package, whose
  ``__init__`` loads a torchvision VGG -> the package is registered without
  running that ``__init__``, so only the small ``transformer_utils`` file loads;
* ``m2fp_net.py`` imports ``ImageList`` from the MaskDINO-Swin module, which
  imports the Swin backbone (timm, hence torchvision) -> the backbones package
  is registered with a placeholder Swin class that M2FP never instantiates.

PyPI's torchvision wheels are CUDA builds that fail to import next to the CPU
torch this project pins, so keeping them out of the import path is what makes
``pip install m2fp-obs[m2fp]`` work on a fresh machine.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import types
from typing import Any

from ...errors import M2fpError

log = logging.getLogger(__name__)

_CV = "modelscope.models.cv"
_DDCOLOR = f"{_CV}.image_colorization.ddcolor"
_BACKBONES = f"{_CV}.image_instance_segmentation.backbones"
_MMCV_LEAF = "mmcv.ops.multi_scale_deform_attn"

_installed = False


class MissingDependency(M2fpError, ImportError):
    """modelscope (or torch) is not installed: the text has the pip command."""


def _bare_package(name: str) -> None:
    """Register package ``name`` with its real ``__path__`` but without running its ``__init__``."""
    if name in sys.modules:
        return
    parent, _, _ = name.rpartition(".")
    parent_mod = importlib.import_module(parent)
    assert parent_mod.__file__ is not None, f"{parent} is a namespace package"
    directory = os.path.join(os.path.dirname(parent_mod.__file__), name.rpartition(".")[2])
    if not os.path.isdir(directory):
        raise MissingDependency(f"{name} not found: this modelscope version is not supported")
    pkg = types.ModuleType(name, f"{name} (registered by m2fp_server without its __init__)")
    pkg.__path__ = [directory]
    pkg.__package__ = name
    pkg.__file__ = os.path.join(directory, "__init__.py")
    spec = importlib.util.spec_from_loader(name, loader=None, is_package=True)
    assert spec is not None  # a loader-less spec is always made
    spec.submodule_search_locations = [directory]
    pkg.__spec__ = spec
    sys.modules[name] = pkg


class _SwinUnavailable:
    """Placeholder for modelscope's D2SwinTransformer (needs timm); M2FP uses a ResNet."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise ImportError("the Swin backbone needs timm/torchvision, which m2fp-obs keeps out of "
                          "its import path; M2FP does not use it")


def _install_backbones_placeholder() -> None:
    _bare_package(_BACKBONES)
    pkg = sys.modules[_BACKBONES]
    if not hasattr(pkg, "D2SwinTransformer"):
        pkg.D2SwinTransformer = _SwinUnavailable  # type: ignore[attr-defined]
        pkg.SwinTransformer = _SwinUnavailable  # type: ignore[attr-defined]


def _install_mmcv() -> None:
    if _MMCV_LEAF in sys.modules or importlib.util.find_spec("mmcv") is not None:
        log.info("mmcv is installed; ModelScope uses its multi-scale deformable attention")
        return
    from . import msdeform_attn
    for name in ("mmcv", "mmcv.ops"):
        mod = types.ModuleType(name, "registered by m2fp_server: only multi_scale_deform_attn exists")
        mod.__path__ = []
        sys.modules[name] = mod
    sys.modules[_MMCV_LEAF] = msdeform_attn
    sys.modules["mmcv.ops"].multi_scale_deform_attn = msdeform_attn  # type: ignore[attr-defined]
    sys.modules["mmcv"].ops = sys.modules["mmcv.ops"]  # type: ignore[attr-defined]


def install_import_shims() -> None:
    """Make ModelScope's M2FP modules importable here (idempotent)."""
    global _installed
    if _installed:
        return
    for pkg in ("torch", "modelscope"):
        if importlib.util.find_spec(pkg) is None:
            raise MissingDependency(f"{pkg} is not installed: pip install 'm2fp-obs[m2fp]'")
    _install_mmcv()
    _bare_package(_DDCOLOR)
    _install_backbones_placeholder()
    _installed = True


def m2fp_class() -> type:
    """ModelScope's ``M2FP`` model class."""
    install_import_shims()
    from modelscope.models.cv.image_human_parsing.m2fp_net import M2FP
    return M2FP
