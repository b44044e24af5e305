"""Inference engines behind one interface (see ``base``)."""
from .base import Engine, EngineOutput, EngineUnavailable
from .registry import available, create

__all__ = ["Engine", "EngineOutput", "EngineUnavailable", "available", "create"]
