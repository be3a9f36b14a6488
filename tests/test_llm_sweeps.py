"""Issue 33, item 5: an LLM study's declared sweep (prompts, image variants, repeats) against the fake server."""
import csv
import hashlib
import json
from collections import Counter

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import binomtest

from ferbench.cli import main
from ferbench.errors import SuiteError
from ferbench.llm.query import png_bytes
from ferbench.metrics import holm
from ferbench.store import RunStore
from ferbench.suite.expansion import Overrides, expand
from ferbench.suite.loading import load_suite

from conftest import one_study_suite
from fake_openai import KEY, FakeOpenAI, Reply, ask, image_of, llm_experiment, llm_options, prompt_of, \
    synthetic_split, truth_by_sha

DATA = "synthetic:1400:0"  # the images of fake_openai.synthetic_split(): the script knows every true class
LITERAL = "Which emotion does this face show? Answer with <b>one</b> word | =1+1"  # shown escaped


def _suite(tmp_path, llm: dict) -> str:
    p = tmp_path / "s.yaml"
    p.write_text(one_study_suite(" [{model: basic_cnn}]", data=DATA, defaults="{epochs: 1}",
                                 split="{kind: official, train_per_class: 10}", name="r")
                 + f"    llm: {json.dumps(llm)}\n")
    return str(p)


def _llm(base_url="http://127.0.0.1:9/v1", **sens):
    return {"endpoints": [{"model": "m", "base_url": base_url, "api_key_env": "FAKE_KEY"}],
            "sample": {"per_class": 2}, "sensitivity": sens}


def test_the_sweep_expands_one_setting_at_a_time_only_with_sensitivity(tmp_path):
    suite = load_suite(_suite(tmp_path, _llm(prompt=["paper", "json", LITERAL], detail=["high"], image_size=[48, 224],
                                             repeats={"n": 3, "temperature": 1.0})))
    plain = {e.id: e for e in expand(suite)}
    swept = {e.id: e for e in expand(suite, overrides=Overrides(sensitivity=True))}
    assert set(plain) == {"s.basic_cnn", "s.llm.m"}
    base = swept["s.llm.m"]
    assert base.config_hash() == plain["s.llm.m"].config_hash() and base.llm.sensitivity is None
    members = sorted(set(swept) - set(plain))  # 'paper' and 48 are the base's own: nothing added
    assert len(members) == 5 and "s.llm.m+detail_high" in members and "s.llm.m+image_size_224" in members
    lit = next(swept[m] for m in members if "+prompt_text-" in m)
    assert lit.llm.prompt == LITERAL and lit.variant.of == "m" and lit.variant.setting == "prompt"
    rep = swept["s.llm.m+repeats_3x-t1"]
    assert rep.llm.repeats == 3 and rep.llm_endpoint.temperature == 1.0 and base.llm_endpoint.temperature == 0.0
    assert swept["s.llm.m+detail_high"].llm_endpoint.detail == "high"
    assert len({swept[m].config_hash() for m in members} | {base.config_hash()}) == 6
    assert all(swept[m].llm.sample == base.llm.sample for m in members)  # the same images


def test_a_colour_variant_of_a_grayscale_study_is_refused(tmp_path):
    suite = load_suite(_suite(tmp_path, _llm(color=["gray"])))
    assert len(expand(suite, overrides=Overrides(sensitivity=True))) == 2  # gray is the base: nothing added
    suite = load_suite(_suite(tmp_path, _llm(color=["rgb"])))
    with pytest.raises(SuiteError, match="grayscale .input channels 1.: a colour variant needs a colour dataset"):
        expand(suite, overrides=Overrides(sensitivity=True))
    r = CliRunner().invoke(main, ["validate", str(suite.path)])  # validate checks the declared sweeps too
    assert r.exit_code != 0 and "llm sensitivity color=rgb: the study's images are grayscale" in r.output
    with pytest.raises(Exception, match="repeats above 1 need every endpoint's temperature above 0"):
        load_suite(_suite(tmp_path, {**_llm(prompt=["json"]), "repeats": 3}))


def _rgb(split, tint=(1.0, 0.8, 0.6)):
    """The split's test images as RGB: tinted (real colour) or with three equal channels (gray read as RGB)."""
    import dataclasses

    imgs = (split.test.images[..., None] * np.array(tint)).astype(np.uint8)
    return dataclasses.replace(split, test=dataclasses.replace(split.test, images=imgs))


def test_gray_variant_sends_gray_and_rgb_on_data_without_colour_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", KEY)
    split = synthetic_split()
    modes = []

    def script(n, sha, body):
        im, detail = image_of(body)
        modes.append((im.mode, detail))
        return Reply("happy")

    with FakeOpenAI(script) as srv:
        store = RunStore(tmp_path / "res")
        exp = llm_experiment(per_class=1, model="m", base_url=srv.base_url, detail="high")
        gray = exp.model_copy(update={"id": "s.llm.gray", "llm": exp.llm.model_copy(update={"color": "gray"})})
        res = ask(gray, _rgb(split), store, llm_options(tmp_path))
        assert res.status == "ok" and {m for m in modes} == {("L", "high")} and "grayscale" in res.sample.image
        rgb = exp.model_copy(update={"id": "s.llm.rgb", "llm": exp.llm.model_copy(update={"color": "rgb"})})
        res = ask(rgb, _rgb(split), store, llm_options(tmp_path))
        assert res.status == "ok" and modes[-1] == ("RGB", "high") and "RGB" in res.sample.image
        sent = len(srv.requests)
        res = ask(rgb.model_copy(update={"id": "s.llm.rgb2"}), _rgb(split, (1, 1, 1)), store, llm_options(tmp_path))
        assert res.status == "failed" and "equal R, G and B channels" in res.error
        res = ask(rgb.model_copy(update={"id": "s.llm.rgb3"}), split, store, llm_options(tmp_path))
        assert res.status == "failed" and "images are grayscale (one channel)" in res.error
        assert len(srv.requests) == sent  # nothing sent for a refused variant


def _answers(truth, classes):
    """Per image, the three answers the script gives (an order-free multiset: no ties), by the image's hash."""
    def of(sha):
        true = truth[sha]
        other = classes[(classes.index(true) + 1) % len(classes)]
        return [[true] * 3, [true, other, true], [other, "no idea", other], ["no idea", "no idea", true]][
            int(sha[:8], 16) % 4]
    return of


@pytest.mark.parametrize("batch", [False, True], ids=["sync", "batch_api"])
def test_repeats_are_scored_by_majority_with_agreement_and_each_repeat_is_cached_apart(tmp_path, monkeypatch, batch):
    monkeypatch.setenv("FAKE_KEY", KEY)
    split = synthetic_split()
    classes = list(split.classes)
    truth = truth_by_sha(split)
    plan, served = _answers(truth, classes), Counter()

    def script(n, sha, body):
        assert body["temperature"] == 1.0
        served[sha] += 1
        return Reply(plan(sha)[served[sha] - 1])

    with FakeOpenAI(script, batch_polls=1) as srv:
        store = RunStore(tmp_path / "res")
        exp = llm_experiment(per_class=2, model="m", base_url=srv.base_url, temperature=1.0, batch=batch,
                             batch_wait=30)
        exp = exp.model_copy(update={"llm": exp.llm.model_copy(update={"repeats": 3})})
        res = ask(exp, split, store, llm_options(tmp_path))
        n = res.sample.n
        assert res.status == "ok" and len(srv.requests) == 3 * n and set(served.values()) == {3}
        assert res.estimate.requests == 3 * n and res.usage.via_batch == (3 * n - 1 if batch else 0)
        expected, shares = {}, []
        for sha in served:
            votes = Counter(a if a in classes else None for a in plan(sha))
            top, count = votes.most_common(1)[0]
            expected[sha], shares = top, shares + [count / 3]
        pred = store.read_predictions(exp.id)
        by_id = {r.id: r for r in res.repeats.per_image}
        sha_of = {str(iid): hashlib.sha256(png_bytes(img, 48)).hexdigest()
                  for img, iid in zip(split.test.images, split.test.ids)}
        for iid, p in zip(pred.ids, pred.predicted):
            want = expected[sha_of[str(iid)]]
            assert p == (classes.index(want) if want else -1) and by_id[str(iid)].majority == (want or "")
        assert res.repeats.agreement_mean == pytest.approx(np.mean(shares))
        assert res.repeats.all_agree == pytest.approx(np.mean([s == 1 for s in shares]))
        assert 0 < res.repeats.all_agree < 1 and res.repeats.n == 3
        acc = np.mean([expected[sha_of[str(i)]] == classes[t] for i, t in zip(pred.ids, pred.true)])
        assert res.metrics["sample"].accuracy == pytest.approx(acc)
        # the same config under another id: every repeat from the cache, each its own answer (not repeat 0's)
        again = ask(exp.model_copy(update={"id": "s.llm.again"}), split, store, llm_options(tmp_path))
        assert len(srv.requests) == 3 * n and again.usage.cache_hits == 3 * n
        assert again.repeats.agreement_mean == pytest.approx(res.repeats.agreement_mean)


def test_a_prompt_sweep_reports_spread_mcnemar_and_holm(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", KEY)
    truth = truth_by_sha(synthetic_split())

    def script(n, sha, body):
        prompt = prompt_of(body)
        if "JSON" in prompt:
            return Reply(json.dumps({"emotion": truth[sha]}))
        return Reply("no idea" if prompt == LITERAL else "happy")

    with FakeOpenAI(script) as srv:
        suite = _suite(tmp_path, _llm(srv.base_url, prompt=["json", LITERAL]))
        out = tmp_path / "res"
        r = CliRunner().invoke(main, ["run", suite, "--results-dir", str(out), "--sensitivity", "--no-cache"])
        assert r.exit_code == 0, r.output
    run = out / "r"
    trues = {}
    for eid in ("s.llm.m", "s.llm.m+prompt_json", f"s.llm.m+prompt_text-"):
        d = next(p for p in run.iterdir() if p.name.startswith(eid) and (eid.endswith("-") or p.name == eid))
        with open(d / "predictions.csv", newline="") as fh:
            trues[eid] = [(int(x["true"]), int(x["predicted"])) for x in csv.DictReader(fh)]
    happy = 3  # FER2013 class order
    base = [t == happy for t, _ in trues["s.llm.m"]]
    assert [p for _, p in trues["s.llm.m+prompt_json"]] == [t for t, _ in trues["s.llm.m"]]
    n = len(base)
    acc = [np.mean(base), 1.0, 0.0]
    spread = 100 * (max(acc) - min(acc))
    p_json = binomtest(0, n - sum(base), 0.5).pvalue  # base right where json is wrong: never
    p_lit = binomtest(sum(base), sum(base), 0.5).pvalue
    adj = holm([p_json, p_lit])
    md = (run / "report.md").read_text()
    assert f"Sweep of prompt for m: spread {spread:.1f} points" in md
    section = md[md.index("Sweep of prompt for m"):]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:5]
    assert rows[0].startswith("| (base) paper") and "json" in rows[1] and "Which emotion" in rows[2]
    assert "< 0.001" in rows[1] and f"{p_lit:.3f}" in rows[2] and "| yes" in rows[1] and "| no" in rows[2]
    assert (f"{adj[0]:.3f}" if adj[0] >= 0.001 else "< 0.001") in rows[1] and f"{adj[1]:.3f}" in rows[2]
    assert "100.00" in rows[2]  # every literal-prompt answer names no class: a parse failure
    assert "m+prompt_json (LLM)" not in md  # variants are the sweep table's, not LLM rows beside the networks
    assert "json" in (run / "tables" / "s_sweep1_prompt.csv").read_text()  # exported like every table
    html = (run / "report.html").read_text()
    assert "<b>one</b>" not in html and "&lt;b&gt;one&lt;/b&gt;" in html and "\\<b\\>one\\</b\\> word \\|" in md


def test_repeats_with_several_images_per_request_are_refused():
    from pydantic import ValidationError

    from ferbench.schema.llm import LLMConfig

    ep = {"model": "m", "temperature": 0.7, "api_key_env": "K"}
    LLMConfig(endpoints=[ep], repeats=3)  # one image a request: fine
    with pytest.raises(ValidationError, match="repeats above 1 ask one image per request"):
        LLMConfig(endpoints=[ep], repeats=3, images_per_request=5)
    with pytest.raises(ValidationError, match="repeats above 1 ask one image per request"):
        LLMConfig(endpoints=[{**ep, "images_per_request": 4}], repeats=2)
