"""The server package's one exception base.

Every error the package raises on purpose (a missing engine, missing weights, an
unsafe address, a server that does not answer) derives from :class:`M2fpError`,
so a boundary (the CLI's ``main``, the HTTP handlers) catches this one class and
shows its text, instead of keeping a list of classes in step with the code.
"""
from __future__ import annotations


class M2fpError(Exception):
    """An expected failure whose message tells the user what to do; no traceback needed."""
