"""One emotion vocabulary and each dataset's map into it.

The vocabulary is FER2013's seven classes in FER2013's order, then contempt (FER+, AffectNet-8, CK+):
a 7-class model's output index means the same class in every 8-class set. Each dataset's own codes are
mapped here, once, so no reader re-states a label order (RAF-DB counts 1-7 from surprise, AffectNet
0-10 from neutral with 8-10 not emotions, CK+ 0-7 from neutral with 0 meaning "no label").
"""
from __future__ import annotations

from . import CLASSES
from .labels import canonical_class

VOCABULARY: tuple[str, ...] = (*CLASSES, "contempt")
CLASSES_7: tuple[str, ...] = CLASSES
CLASSES_8: tuple[str, ...] = VOCABULARY

# FER+ fer2013new.csv vote columns, in file order; the last two are not emotions.
FERPLUS_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                   "unknown", "NF")
FERPLUS_MAP = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise", "sadness": "sad",
               "anger": "angry", "disgust": "disgust", "fear": "fear", "contempt": "contempt"}
# RAF-DB basic, list_patition_label.txt: 1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, 6 Anger, 7 Neutral.
RAFDB_CODES = {1: "surprise", 2: "fear", 3: "disgust", 4: "happy", 5: "sad", 6: "angry", 7: "neutral"}
# AffectNet expression: 0-7 emotions; 8 None, 9 Uncertain, 10 No-Face are never emotions.
AFFECTNET_CODES = {0: "neutral", 1: "happy", 2: "sad", 3: "surprise", 4: "fear", 5: "disgust", 6: "angry",
                   7: "contempt"}
AFFECTNET_NON_EMOTION = {8: "none", 9: "uncertain", 10: "no face"}
# CK+ Emotion/*_emotion.txt: 0 neutral (unused in the files), 1 anger, 2 contempt, 3 disgust, 4 fear,
# 5 happy, 6 sadness, 7 surprise.
CKPLUS_CODES = {0: "neutral", 1: "angry", 2: "contempt", 3: "disgust", 4: "fear", 5: "happy", 6: "sad",
                7: "surprise"}
# JAFFE file names such as KA.AN1.39.tiff: the second field's letters.
JAFFE_CODES = {"AN": "angry", "DI": "disgust", "FE": "fear", "HA": "happy", "SA": "sad", "SU": "surprise",
               "NE": "neutral"}

DATASET_MAPS = {"FER+": FERPLUS_MAP, "RAF-DB": RAFDB_CODES, "AffectNet": AFFECTNET_CODES, "CK+": CKPLUS_CODES,
                "JAFFE": JAFFE_CODES}


def index(name: str) -> int:
    """The vocabulary index of a class name (exact vocabulary spelling)."""
    return VOCABULARY.index(name)


def shared_classes(model_classes: tuple[str, ...], data_classes: tuple[str, ...]) -> tuple[str, ...]:
    """Classes a model can be scored on in a dataset: those both name, in the dataset's order.

    >>> shared_classes(CLASSES_7, CLASSES_8)[-1]
    'neutral'
    """
    return tuple(c for c in data_classes if c in model_classes)


def vocab_class(name: str) -> str | None:
    """The vocabulary class a spelling names: contempt is its own class here (``canonical_class``, made for
    7-class answers, folds it into disgust)."""
    n = name.strip().lower()
    return "contempt" if n in ("contempt", "contemptuous") else canonical_class(n)
