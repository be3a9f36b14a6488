"""The top of a report: the best model of each study and each LLM against the best network (with the
exact McNemar p), and the one line that stands for a study none of whose experiments produced a result."""
from __future__ import annotations

from ..schema.results import StudyMeta
from ..store import RunData
from .document import Paragraph
from .format import CI, DASH, Num, pct
from .llm import llm_vs_best_network
from .study import label_of, n_seeds, reported_part
from .tables import Table


def ran(study: StudyMeta, run: RunData) -> bool:
    """A study ran when at least one of its experiments (a model or an LLM) has a result."""
    return any(r.ok for r in run.of_study(study.name))


def not_run_line(study: StudyMeta, run: RunData) -> Paragraph:
    """'Study title (name): not run: 2 skipped (first reason), 1 failed (first error).' in one line."""
    results = run.of_study(study.name)
    parts = []
    for status in ("skipped", "failed"):
        these = [r for r in results if r.status == status]
        if these:
            why = next(((r.reason or r.error or "").strip().splitlines()[0] for r in these
                        if (r.reason or r.error or "").strip()), "")
            parts.append(f"{len(these)} {status}" + (f" ({why[:160]})" if why else ""))
    return Paragraph("; ".join(parts) or "no result in this run folder",
                     strong=f"{study.title} ({study.name}): not run:" if study.title and study.title != study.name
                     else f"{study.name}: not run:", style="small")


def summary_table(studies: list[StudyMeta], run: RunData) -> Table | None:
    """Best model per study (the split it reports), then each LLM vs the best network on its sample."""
    rows = []
    for st in studies:
        models = run.models(st.name)
        if not models:
            continue
        best = max(models, key=lambda r: r.headline.accuracy)
        head = [st.title or st.name, f"{label_of(best, n_seeds(models))} ({reported_part(st)})",
                Num.pct(best.headline.accuracy), CI.of(best.headline.accuracy_ci)]
        vs = llm_vs_best_network(st, run)
        if not vs:
            rows.append(head + [DASH, Num(None, DASH)])
        for i, v in enumerate(vs):
            text = (f"{v.llm} {pct(v.llm_accuracy, 1)} % vs {v.network} {pct(v.network_accuracy, 1)} % "
                    f"on {v.images:,} images")
            rows.append((head if i == 0 else ["", "", "", ""]) + [text, Num.p(v.p_value)])
    if not rows:
        return None
    return Table("summary", "Summary", ["study", "best model", "acc %", "95% CI (Wilson)",
                                        "LLM vs best network on the same images", "McNemar p"], rows,
                 "Best model: the highest accuracy on the split the study reports (test, or validation where the "
                 "split has no test set). McNemar p: exact two-sided test of the LLM against that network on the "
                 "LLM's sample; details per study below.", paper_columns=[0, 1, 2, 3, 4, 5])
