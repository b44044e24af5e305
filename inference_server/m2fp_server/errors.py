"""The server package's one exception base.

Every error the package raises on purpose (a missing engine, missing weights, an
unsafe address, a server that does not answer) derives from :class:`M2fpError`,
so a boundary (the CLI's ``main``, the HTTP handlers) catches this one class and
shows its text, instead of keeping a list of classes in step with the code.
"""
from __future__ import annotations


class M2fpError(Exception):
    """An expected failure whose message tells the user what to do; no traceback needed."""


class BadInput(M2fpError, ValueError):
    """Something the user gave (an option, a value, a file's content) cannot be used; the text says why."""


class MissingFile(M2fpError, FileNotFoundError):
    """A file the command needs is not there; the text says how to get it."""


class ToolFailed(M2fpError, RuntimeError):
    """A tool's own step failed (a server that exited, an export that did not check out)."""
