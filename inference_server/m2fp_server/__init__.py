"""m2fp-obs inference server: engines, mask post-processing and the ZeroMQ server."""
__version__ = "0.1.0"
