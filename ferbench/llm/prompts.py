"""Prompt templates. ``paper`` is the llm_vs_nn study's prompt verbatim (section 7, 'Neural Networks vs LLM')."""
from __future__ import annotations

from .. import CLASSES
from ..errors import unknown_name

PROMPTS: dict[str, str] = {
    "paper": ("From the image provided, what emotion does the person in it seem to have? Your options to choose "
              "from are: angry, disgust, fear, happy, neutral, sad, and surprise. Keep your response to only the "
              "emotion you choose"),
    "json": ("Classify the facial expression of the person in the image. Answer with JSON only, of the form "
             '{"emotion": "<one of: angry, disgust, fear, happy, neutral, sad, surprise>"}.'),
}

# Structured-output variant for servers that support response_format json_schema.
JSON_SCHEMA = {
    "type": "json_schema",
    "json_schema": {"name": "fer_answer", "strict": True, "schema": {
        "type": "object", "additionalProperties": False, "required": ["emotion"],
        "properties": {"emotion": {"type": "string", "enum": list(CLASSES)}}}},
}


def get_prompt(name_or_text: str) -> tuple[str, dict | None]:
    """(prompt text, response_format or None). Unknown names are taken as literal prompt text."""
    if name_or_text in PROMPTS:
        return PROMPTS[name_or_text], JSON_SCHEMA if name_or_text == "json" else None
    if len(name_or_text.split()) < 3:
        raise ValueError(unknown_name("prompt template", name_or_text, PROMPTS) + " (or give the full prompt text)")
    return name_or_text, None
