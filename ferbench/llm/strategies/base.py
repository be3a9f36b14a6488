"""What a prompt strategy is: the request it makes (prompt text, response format, extra body fields) for one
image or several labelled images, and its parse rule (answer text -> the classes it names, best first).

Several images in one request are answered one line each, ``Image <k> (id <id>): <answer>``; :func:`resolve`
matches those answers to the images by id where a line gives one, else by position, and refuses a batch whose
answers do not name every image exactly once (a miscount, which the runner asks again and then splits).
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class StrategyOptions:
    """The settings a strategy reads (from the study's ``llm:`` block and its classes)."""
    classes: tuple[str, ...]
    top_k: int = 5
    structured_via: str = "json_schema"
    prompt: str = "paper"  # 'label': a template name or the literal prompt text


@dataclass(frozen=True)
class Ask:
    """One request's strategy-dependent parts."""
    prompt: str
    response_format: dict | None = None
    extra_body: dict | None = None  # fields an OpenAI-compatible server takes beyond OpenAI's (vLLM)


def image_label(position: int, iid: str) -> str:
    """How image ``position`` (from 1) of a request is introduced to the model."""
    return f"Image {position} (id {iid})"


def options_text(classes) -> str:
    opts = sorted(classes)
    return ", ".join(opts[:-1]) + f", and {opts[-1]}" if len(opts) > 1 else opts[0]


def many_prompt(n: int, answer_form: str, question: str) -> str:
    """The prompt of a request holding ``n`` labelled images (line-answered strategies)."""
    return (f"The {n} images below are labelled Image 1 to Image {n}, each with its id. Answer the question "
            f"below for each image separately: one line per image, in order, exactly in the form "
            f"`Image <k> (id <id>): {answer_form}`, and nothing else.\n\nThe question, for each image: {question}")


_LINE = re.compile(r"^[\s>*#\-]*image\s*#?\s*(\d{1,3})\s*(?:\(\s*id\s*[:=]?\s*(.+?)\s*\))?[\s*]*[:\-\u2013\u2014]\s*(.*)$",
                   re.IGNORECASE | re.MULTILINE)


def resolve(entries: list[tuple[int | None, str | None, str]], ids: list[str]) -> list[str] | None:
    """Each image's answer from (position from 1, id, answer) entries: the id decides where an entry gives a
    known one, else the position. None (a miscount) unless every image is answered exactly once."""
    norm = {str(i).strip().lower(): n for n, i in enumerate(ids)}
    out: list[str | None] = [None] * len(ids)
    for pos, iid, answer in entries:
        at = norm.get(iid.strip().lower()) if iid else None
        if at is None:
            if iid and iid.strip().lower() not in norm:
                return None  # an id this request did not send
            if pos is None or not 1 <= pos <= len(ids):
                return None
            at = pos - 1
        if out[at] is not None:
            return None  # the same image answered twice
        out[at] = answer
    return None if any(a is None for a in out) else out  # type: ignore[return-value]


def answer_lines(text: str, ids: list[str]) -> list[str] | None:
    """The per-image answers of a line-answered request (see :func:`resolve`)."""
    entries = [(int(m.group(1)), m.group(2), m.group(3).strip()) for m in _LINE.finditer(text)]
    return resolve(entries, ids) if len(entries) == len(ids) else None


class Strategy:
    """A prompt strategy. Subclasses set ``name`` and ``parse_rule`` and implement :meth:`ask` and
    :meth:`ranking`; :meth:`answer_part` picks the part of an answer that holds the label(s)."""
    name = ""
    parse_rule = ""  # one sentence, shown in the report and the docs
    text_limit = 2000  # characters of an answer kept (the journal, predictions.csv): reasoning keeps more
    ranks = False  # answers are rankings: top-1 and top-k are scored

    def ask(self, opts: StrategyOptions, ids: list[str]) -> Ask:
        raise NotImplementedError

    def ranking(self, answer: str, opts: StrategyOptions) -> list[str]:
        """The classes one image's answer names, best first; empty: unparsed."""
        raise NotImplementedError

    def answer_part(self, text: str) -> str | None:
        return text

    def parse(self, text: str | None, opts: StrategyOptions) -> list[str]:
        """One image's whole answer -> its ranking (empty: unparsed)."""
        part = self.answer_part(text) if text else None
        return self.ranking(part, opts) if part else []

    def split(self, text: str | None, ids: list[str]) -> list[str] | None:
        """A several-image answer -> one answer per image (in ``ids`` order), or None on a miscount."""
        part = self.answer_part(text) if text else None
        return answer_lines(part, ids) if part else None
