"""The LLM part of a study's report: Table 2 layout on the identical sample, CIs, McNemar, figures."""
from __future__ import annotations

import numpy as np

from .. import figures
from ..metrics import accuracy_ci, mcnemar_exact, per_class_accuracy


def llm_section(study: dict, results: list[dict], run, fig_dir, base: dict | None) -> dict | None:
    from ..report import Table, _pct

    llms = [r for r in results if r["kind"] == "llm"]
    if not llms:
        return None
    classes = study["classes"]
    k = len(classes)
    done = [r for r in llms if r["status"] in ("ok", "failed") and "metrics" in r]
    sample_ids = next((r["sample"]["ids"] for r in llms if r.get("sample")), None)
    tables, figs, unparsed = [], [], []
    if sample_ids:
        want = np.array(sample_ids)
        rows = {}  # label -> (true, pred, raw)
        for r in results:
            if r["kind"] != "train" or r["status"] != "ok" or r.get("fold") not in (None, 0):
                continue
            p = run.predictions(r["id"])
            if p is None:
                continue
            pos = {i: n for n, i in enumerate(p["id"]) if p["split"][n] == "test"}
            if not all(i in pos for i in want):
                continue
            sel = np.array([pos[i] for i in want])
            rows[r["label"]] = (p["true"][sel], p["predicted"][sel], None)
        for r in done:
            p = run.predictions(r["id"])
            if p is not None:
                order = {i: n for n, i in enumerate(p["id"])}
                sel = np.array([order[i] for i in want])
                rows[f"{r['label']} (LLM)"] = (p["true"][sel], p["predicted"][sel], p["raw"][sel])
                unparsed += [{"model": r["label"], **u} for u in r.get("unparsed", [])]
        trained = [lbl for lbl in rows if not lbl.endswith("(LLM)")]
        best = max(trained, key=lambda lbl: (rows[lbl][0] == rows[lbl][1]).mean()) if trained else None
        body = []
        for lbl, (t, pr, _) in rows.items():
            acc, lo, hi = accuracy_ci(t, pr)
            pca = per_class_accuracy(t, pr, num_classes=k)
            p_val = "–" if best is None or lbl == best else f"{mcnemar_exact(t, rows[best][1], pr)['p_value']:.3f}"
            body.append([lbl, *(_pct(v) for v in pca), _pct(acc), f"[{100 * lo:.1f}, {100 * hi:.1f}]", p_val])
        n = len(want)
        note = (f"Identical sample of {n} images ({n // k if n % k == 0 else '~' + str(n // k)} per class). "
                f"95% CIs are Wilson intervals; p is the exact McNemar test against the best trained model on this "
                f"sample{f' ({best})' if best else ''}. With {n} images one image moves accuracy by "
                f"{100 / n:.1f} points: gaps whose p is large are noise.")
        tables.append(Table(f"{study['name']}_llm_sample", "Per-class accuracy on the LLM sample (Table 2 layout, %)",
                            ["model", *classes, "overall", "95% CI", f"McNemar p vs {best or '–'}"], body, note))
        st = (base or {}).get("sample_table")
        if st:
            cols = st["columns"]
            order = [cols.index(c) for c in classes if c in cols]
            rep = [[m, *(f"{v[i]:.0f}" for i in order), f"{v[-1]:.2f}"] for m, v in st["rows"].items()]
            tables.append(Table(f"{study['name']}_llm_reported", f"Reported on the paper's own 35 images ({st['source']}, %)",
                                ["model", *classes, "overall"], rep,
                                "The paper's images are not published; its sample differs from ours."))
        # figure of the sampled images with every model's answer
        if rows:
            labels = next(iter(rows.values()))[0]
            caps = []
            for j in range(n):
                caps.append("\n".join(f"{lbl.replace(' (LLM)', '*')[:10]}: {classes[v[1][j]][:3] if v[1][j] >= 0 else '?'}"
                                      for lbl, v in list(rows.items())[:4]))
            imgs = _sample_images(run, llms, want)
            if imgs is not None:
                figs.append(("LLM sample with each model's answer (* = LLM, ? = unparsed)",
                             figures.sample_grid(imgs, labels, classes, fig_dir / f"{study['name']}_llm_sample.png",
                                                 per_class=max(1, n // k + 1), captions=caps)))
    for r in done:
        cm = np.array(r["metrics"]["sample"]["confusion"])
        figs.append((f"Confusion matrix: {r['label']} (LLM sample)", figures.confusion(
            cm, classes, fig_dir / f"{r['id']}_cm.png", f"{r['label']} on the LLM sample")))
    usage_rows = [[r["label"], r["status"], str(r.get("usage", {}).get("requests_sent", "–")),
                   str(r.get("usage", {}).get("cache_hits", "–")), str(r.get("usage", {}).get("prompt_tokens", "–")),
                   str(r.get("usage", {}).get("completion_tokens", "–")),
                   "–" if r.get("usage", {}).get("estimated_cost_usd") is None else f"${r['usage']['estimated_cost_usd']:.4f}",
                   r.get("reason") or r.get("error") or ""] for r in llms]
    tables.append(Table(f"{study['name']}_llm_usage", "LLM endpoints: requests, tokens, cost",
                        ["endpoint", "status", "requests", "cache hits", "prompt tok", "completion tok", "est. cost",
                         "note"], usage_rows))
    return {"tables": tables, "figures": figs, "unparsed": unparsed}


def _sample_images(run, llm_results, ids):
    """The sampled images, saved by the LLM query beside its answers."""
    for r in llm_results:
        arr = run.arrays(r["id"], "sample_images")
        if arr is None:
            continue
        pos = {str(i): n for n, i in enumerate(arr["ids"])}
        if all(str(i) in pos for i in ids):
            return arr["images"][[pos[str(i)] for i in ids]]
    return None
