"""``prompt: manifest``: each image asked with its own benchmark item's prompt (a FERBench-style QA manifest,
:mod:`ferbench.data.manifest`) and its answer parsed against that item's candidate labels.

The strategy still reads the answer (``reason_then_answer`` for UniFER's ``<think>``/``<answer>`` prompt); a
class it finds counts only if it is one of the item's candidate labels (in the vocabulary's words, mapped to
the study's classes), else the answer is unparsed. Every sampled image must have a prompt in the manifest:
one without fails the experiment before anything is sent, never falling back to another prompt.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import FerbenchError
from ..vocabulary import vocab_class

MANIFEST = "manifest"


@dataclass(frozen=True)
class ItemPrompts:
    prompts: dict[str, str]  # image id -> its item's prompt
    candidates: dict[str, frozenset[str]]  # image id -> the study classes its candidate labels name (empty: all)

    def request(self, iid: str) -> dict:
        return {"prompt": self.prompts[iid]}

    def allows(self, iid: str, cls: str) -> bool:
        c = self.candidates.get(iid)
        return not c or cls in c

    def longest(self) -> str:
        return max(self.prompts.values(), key=len)


def item_prompts(exp, split, ids: list[str]) -> ItemPrompts | None:
    """The sampled images' own prompts for ``prompt: manifest``; None for any other prompt."""
    if exp.llm.prompt != MANIFEST:
        return None
    items = getattr(split, "test_items", None) or {}
    if not items:
        raise FerbenchError("prompt: manifest needs a split of kind manifest whose items carry prompts (a "
                            "FERBench-style QA manifest with a 'prompt' per item)")
    if (exp.llm_endpoint.images_per_request or exp.llm.images_per_request) > 1 or exp.llm_endpoint.batch:
        raise FerbenchError("prompt: manifest asks each image with its own prompt: give images_per_request 1 and "
                            "no batch")
    missing = [i for i in ids if not (items.get(i) is not None and items[i].prompt)]
    if missing:
        raise FerbenchError(f"prompt: manifest: {len(missing):,} sampled image(s) have no prompt in the manifest, "
                            f"e.g. {', '.join(m[:60] for m in missing[:5])}")
    classes = set(split.classes)
    return ItemPrompts({i: items[i].prompt for i in ids},
                       {i: frozenset(c for c in map(vocab_class, items[i].candidates) if c in classes) for i in ids})
