"""Class names and their common spellings (folder names, model answers)."""
from __future__ import annotations

# Word forms seen in folder names and model answers, mapped to the canonical class.
ALIASES: dict[str, str] = {
    "angry": "angry", "anger": "angry", "angered": "angry", "mad": "angry", "furious": "angry",
    "annoyed": "angry", "irritated": "angry", "rage": "angry",
    "disgust": "disgust", "disgusted": "disgust", "disgusting": "disgust", "revulsion": "disgust",
    # contempt is not here: it is its own class on 8-class sets (ferbench.vocabulary.vocab_class); only the
    # LLM answer parser folds it into disgust, on a 7-class study, and counts each time it does.
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear", "frightened": "fear",
    "terrified": "fear", "anxious": "fear", "anxiety": "fear", "worried": "fear",
    "happy": "happy", "happiness": "happy", "joy": "happy", "joyful": "happy", "smiling": "happy",
    "glad": "happy", "cheerful": "happy",
    "sad": "sad", "sadness": "sad", "unhappy": "sad", "sorrow": "sad", "sorrowful": "sad",
    "upset": "sad", "depressed": "sad",
    "surprise": "surprise", "surprised": "surprise", "surprising": "surprise", "astonished": "surprise",
    "shocked": "surprise", "amazed": "surprise",
    "neutral": "neutral", "calm": "neutral", "expressionless": "neutral", "indifferent": "neutral",
}


def canonical_class(name: str) -> str | None:
    """The canonical class for a spelling such as 'Happiness' or 'surprised', else None."""
    return ALIASES.get(name.strip().lower())

