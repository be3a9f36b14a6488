"""Prompt templates. ``paper`` is the llm_vs_nn study's prompt verbatim (section 7, 'Neural Networks vs LLM')
for FER2013's seven classes; the options it lists are the study's classes (contempt too on an 8-class set), in
the paper's alphabetical order, so a 7-class study sends the paper's very words."""
from __future__ import annotations

from .. import CLASSES
from ..errors import unknown_name

_TEMPLATES: dict[str, str] = {
    "paper": ("From the image provided, what emotion does the person in it seem to have? Your options to choose "
              "from are: {options}. Keep your response to only the emotion you choose"),
    "json": ("Classify the facial expression of the person in the image. Answer with JSON only, of the form "
             '{{"emotion": "<one of: {choices}>"}}.'),
}


def _options(classes) -> list[str]:
    return sorted(classes)


def prompt_text(name: str, classes=CLASSES) -> str:
    """Template ``name`` with the options ``classes`` (any order; listed alphabetically, as the paper does)."""
    opts = _options(classes)
    return _TEMPLATES[name].format(options=", ".join(opts[:-1]) + f", and {opts[-1]}", choices=", ".join(opts))


PROMPTS: dict[str, str] = {name: prompt_text(name) for name in _TEMPLATES}  # the FER2013 (7-class) texts


def json_schema(classes=CLASSES) -> dict:
    """Structured-output variant for servers that support response_format json_schema."""
    return {"type": "json_schema",
            "json_schema": {"name": "fer_answer", "strict": True, "schema": {
                "type": "object", "additionalProperties": False, "required": ["emotion"],
                "properties": {"emotion": {"type": "string", "enum": list(classes)}}}}}


JSON_SCHEMA = json_schema()


def get_prompt(name_or_text: str, classes=CLASSES) -> tuple[str, dict | None]:
    """(prompt text, response_format or None) for a study of ``classes``. Unknown names are taken as
    literal prompt text (sent as written)."""
    if name_or_text in _TEMPLATES:
        return prompt_text(name_or_text, classes), json_schema(classes) if name_or_text == "json" else None
    if len(name_or_text.split()) < 3:
        raise ValueError(unknown_name("prompt template", name_or_text, PROMPTS) + " (or give the full prompt text)")
    return name_or_text, None
