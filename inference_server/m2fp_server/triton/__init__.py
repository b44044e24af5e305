"""The M2FP forward pass served by a Triton Inference Server.

``m2fp-server`` stays the stateful edge (frames, per-stream state, masks); Triton
runs only the network.  ``repository`` writes a Triton model repository from
the weights, ``remote`` is the engines' gRPC model step, ``local`` serves a
repository through PyTriton on this machine, ``libpython`` checks what
PyTriton's Python backend stub will load, ``bench`` compares in-process with
Triton.
"""
