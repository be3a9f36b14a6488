"""``structured``: the server constrains the answer. ``structured_via: json_schema`` sends OpenAI's
``response_format`` (a strict JSON schema whose ``emotion`` is an enum of the study's classes);
``vllm`` sends vLLM's ``structured_outputs`` ({"choice": [...]} for one image, {"json": schema} for several;
vLLM >= 0.10.2, the only form from 0.12); ``vllm_guided`` the older ``guided_choice`` / ``guided_json``.
Parse rule: the JSON's ``emotion`` (or, for a constrained choice, the whole answer, trimmed) must be one of
the classes exactly (any case); anything else is unparsed, never fuzzily matched."""
from __future__ import annotations

import json

from ..prompts import json_schema, prompt_text
from .base import Ask, Strategy, StrategyOptions, resolve


def _many_schema(classes) -> dict:
    item = {"type": "object", "additionalProperties": False, "required": ["image", "id", "emotion"],
            "properties": {"image": {"type": "integer"}, "id": {"type": "string"},
                           "emotion": {"type": "string", "enum": list(classes)}}}
    return {"type": "object", "additionalProperties": False, "required": ["answers"],
            "properties": {"answers": {"type": "array", "items": item}}}


def _json(text: str):
    try:
        return json.loads(text.strip())
    except (json.JSONDecodeError, RecursionError):
        return None


class Structured(Strategy):
    name = "structured"
    parse_rule = ("the JSON's emotion field (a constrained choice: the whole answer, trimmed) must be one of the "
                  "classes exactly, any case; several images: a JSON list of {image, id, emotion}, matched by id, "
                  "else position; anything else is unparsed")

    def ask(self, opts: StrategyOptions, ids: list[str]) -> Ask:
        cls, n = list(opts.classes), len(ids)
        if n == 1:
            if opts.structured_via == "json_schema":
                return Ask(prompt_text("json", opts.classes), json_schema(opts.classes))
            extra = {"guided_choice": cls} if opts.structured_via == "vllm_guided" else \
                {"structured_outputs": {"choice": cls}}
            return Ask("Classify the facial expression of the person in the image. Answer with one of: "
                       + ", ".join(sorted(cls)) + ".", extra_body=extra)
        schema = _many_schema(cls)
        prompt = (f"The {n} images below are labelled Image 1 to Image {n}, each with its id. Classify the facial "
                  f"expression of the person in each. Answer with JSON only, of the form "
                  f'{{"answers": [{{"image": <k>, "id": "<id>", "emotion": "<one of: {", ".join(sorted(cls))}>"}}, '
                  f"...]}}, one entry per image, in order.")
        if opts.structured_via == "json_schema":
            return Ask(prompt, {"type": "json_schema",
                                "json_schema": {"name": "fer_answers", "strict": True, "schema": schema}})
        extra = {"guided_json": schema} if opts.structured_via == "vllm_guided" else {"structured_outputs": {"json": schema}}
        return Ask(prompt, extra_body=extra)

    def ranking(self, answer: str, opts: StrategyOptions) -> list[str]:
        s = answer.strip()
        if s.startswith("{"):
            v = _json(s)
            s = v.get("emotion") if isinstance(v, dict) and isinstance(v.get("emotion"), str) else ""
        by_lower = {c.lower(): c for c in opts.classes}
        cls = by_lower.get(s.strip().lower())
        return [cls] if cls is not None else []

    def split(self, text: str | None, ids: list[str]) -> list[str] | None:
        v = _json(text) if text else None
        items = v.get("answers") if isinstance(v, dict) else None
        if not isinstance(items, list) or len(items) != len(ids) or not all(isinstance(a, dict) for a in items):
            return None
        entries = []
        for a in items:
            pos, iid, emo = a.get("image"), a.get("id"), a.get("emotion")
            entries.append((pos if isinstance(pos, int) and not isinstance(pos, bool) else None,
                            iid if isinstance(iid, str) else None, emo if isinstance(emo, str) else ""))
        return resolve(entries, ids)
