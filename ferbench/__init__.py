"""ferbench: reproducible facial-expression-recognition benchmarks on FER2013."""

__version__ = "0.1.0"

# FER2013 label ids 0-6; this order is used everywhere (arrays, tables, reports).
CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
