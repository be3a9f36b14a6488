"""CLIP-style models (open_clip, an optional extra) for ``kind: clip``: loading from local files, features,
zero-shot prompts (``fer2013.yaml``: clip_benchmark's FER2013 templates) and the linear probe."""
