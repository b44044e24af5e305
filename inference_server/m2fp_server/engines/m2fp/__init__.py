"""M2FP human parsing on ModelScope's model code, without mmcv (see ``modelscope_compat``).

Modules: ``engine`` (the Engine), ``frames`` (canvas, pre/post-processing, no
torch), ``config`` (configuration.json), ``network`` (build/load, torch),
``exported`` (ONNX Runtime / OpenVINO exports), ``msdeform_attn`` (the operator
mmcv would provide), ``random_model`` (architecture with random weights for
tests and benchmarks).
"""
