"""An LLM study's declared sweep (``llm: {sensitivity: ...}``) expanded into experiments (``--sensitivity``).

Each member is the base LLM experiment of one endpoint with one setting changed, over the same sample (the
sample's settings and seed are the base's); its id is the base's plus ``+setting_value`` and it carries a
:class:`~ferbench.schema.experiment.Variant` naming the base and the change, as the model side's sweep does.
A value the base already has adds nothing.
"""
from __future__ import annotations

import hashlib

from pydantic import ValidationError

from ..errors import SuiteError, unknown_name
from ..schema.experiment import LLMExperiment, Variant
from ..schema.llm_sweep import RepeatsConfig
from ..schema.suite import StudyConfig, safe_id_part
from .loading import LoadedSuite


def _id_text(setting: str, value) -> str:
    if isinstance(value, RepeatsConfig):
        return f"{value.n}x-t{value.temperature:g}"
    if setting == "prompt" and len(value.split()) > 1:  # literal text: named by its hash
        return "text-" + hashlib.sha256(value.encode()).hexdigest()[:8]
    return safe_id_part(f"{value:g}" if isinstance(value, float) else str(value))


def _changed(exp: LLMExperiment, setting: str, value) -> LLMExperiment:
    """``exp`` with ``setting`` set to ``value``, validated as a whole (e.g. repeats need a temperature)."""
    d = exp.model_dump()
    ep = d["llm_endpoint"]
    if isinstance(value, RepeatsConfig):
        d["llm"]["repeats"], ep["temperature"] = value.n, value.temperature
    elif setting in ("detail", "temperature"):
        ep[setting] = value
    else:
        d["llm"][setting] = value
    d["llm"]["endpoints"] = [ep]
    return LLMExperiment.model_validate(d)


def _check(suite: LoadedSuite, st: StudyConfig, setting: str, value) -> None:
    from ..llm.prompts import get_prompt

    if setting == "color" and value == "rgb" and st.input.channels == 1:
        raise SuiteError(suite.path, [f"study {st.name}: llm sensitivity color=rgb: the study's images are "
                                      "grayscale (input channels 1): a colour variant needs a colour dataset read "
                                      "with input: {channels: 3}; it is refused rather than faked"])
    if setting == "prompt":
        try:
            get_prompt(value)
        except ValueError as exc:
            raise SuiteError(suite.path, [f"study {st.name}: llm sensitivity prompt: {exc}"]) from None


def llm_sweep_experiments(suite: LoadedSuite, st: StudyConfig, bases: list[LLMExperiment]) -> list[LLMExperiment]:
    """The members of ``st``'s declared LLM sweep, for each base experiment it names."""
    sens = st.llm.sensitivity
    labels = {e.label for e in bases} | {e.llm_endpoint.model for e in bases}
    for name in sens.endpoints or []:
        if name not in labels:
            raise SuiteError(suite.path, [f"study {st.name}: " + unknown_name("sensitivity endpoint", name,
                                                                               sorted(labels))])
    out = []
    for base in bases:
        if sens.endpoints is not None and not {base.label, base.llm_endpoint.model} & set(sens.endpoints):
            continue
        for setting, value in sens.members():
            _check(suite, st, setting, value)
            was = base.sweep_value(setting)
            shown = value.text if isinstance(value, RepeatsConfig) else value
            if shown == was:
                continue
            try:
                exp = _changed(base, setting, value)
            except ValidationError as exc:
                raise SuiteError(suite.path, [f"study {st.name}: llm sensitivity {setting}={shown!r}: "
                                              f"{exc.errors()[0]['msg']}"]) from None
            tag = f"+{setting}_{_id_text(setting, value)}"
            v = Variant(of=base.label, setting=setting, value=shown)
            dev = f"sensitivity sweep: {setting} {shown!r} instead of the study's {was!r}"
            out.append(exp.model_copy(update={"id": base.id + tag, "label": base.label + tag, "variant": v,
                                              "deviations": [*base.deviations, dev]}))
    return out
