"""Benchmarks (``m2fp bench``): tools that measure the product, kept out of it.

Nothing in ``engines/`` imports from here; every bench step prints as it goes
and has a time bound, so a slow step is reported and skipped, never a silent hang.
Figures go to the docs tables with the command that made them.
"""
