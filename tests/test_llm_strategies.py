"""Prompt strategies end to end against the fake server: each one's request and parse rule, refusals and
content-filter blocks as counted outcomes, several images per request with Lian et al.'s retry-then-split rule."""
import json
import re

import numpy as np
import pytest
from conftest import one_study_suite
from fake_openai import FakeOpenAI, Reply, ask, images_of, lines_for, llm_experiment, llm_options

from ferbench.llm.multi import next_size
from ferbench.llm.query import estimate_llm_experiment
from ferbench.llm.strategies import StrategyOptions, list_strategies, strategy
from ferbench.metrics import wilson_interval
from ferbench.schema.llm import LLMConfig
from ferbench.store import RunStore, read_predictions
from ferbench.verify import verified_metrics

CLS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
OTHER = {"angry": "sad", "disgust": "fear", "fear": "happy", "happy": "sad", "sad": "angry", "surprise": "fear",
         "neutral": "happy"}


def _preds(tmp_path, eid="s.llm.m"):
    return read_predictions(tmp_path / "r" / eid / "predictions.csv")


def _run(tmp_path, split, script, cache="cache", store="r", **kw):
    with FakeOpenAI(script) as srv:
        exp = llm_experiment(model="m", base_url=srv.base_url, **kw)
        res = ask(exp, split, RunStore(tmp_path / store), options=llm_options(tmp_path / cache))
    return res, srv


def test_registry_names_and_unknown_name():
    assert list_strategies() == ["label", "rank", "reason_then_answer", "structured"]
    assert all(strategy(n).parse_rule for n in list_strategies())
    with pytest.raises(ValueError, match="Did you mean 'rank'"):
        LLMConfig(endpoints=[{"model": "m"}], strategy="rnak")


def test_rank_scores_top1_and_topk(tmp_path, env):
    split, truth = env

    def script(n, sha, body):  # the true class second for angry images, first for the others
        t = truth[sha]
        first = [OTHER[t], t] if t == "angry" else [t, OTHER[t]]
        return Reply(", ".join(first + [c for c in ("neutral", "surprise", "disgust") if c not in first][:1]))

    res, srv = _run(tmp_path, split, script, per_class=2, llm={"strategy": "rank", "top_k": 3})
    m = res.metrics["sample"]
    assert "Rank the 3 emotions" in srv.requests[0]["body"]["messages"][0]["content"][0]["text"]
    assert m.accuracy == pytest.approx(12 / 14) and m.top_k == 3 and m.top_k_accuracy == pytest.approx(1.0)
    p = _preds(tmp_path)
    row = list(p.ids).index(next(i for i, t in zip(p.ids, p.true) if t == 0))
    assert p.predicted[row] == CLS.index("sad") and p["ranking"][row].split()[1] == "0"
    assert res.strategy == "rank" and "top_k" in res.parse_rule
    store = RunStore(tmp_path / "r")
    checked, why = store.verify(res, weights_optional=True)  # top-k recomputed from predictions.csv
    assert why is None and checked.metrics["sample"].top_k_accuracy == pytest.approx(1.0)
    preds = store.read_predictions("s.llm.m")
    preds.extra["ranking"] = np.array([" ".join(c.split()[:1]) for c in preds["ranking"]])  # top-1 only
    with pytest.raises(ValueError, match="top_k_accuracy"):
        verified_metrics(res, preds)


def test_reasoning_naming_several_emotions_parses_to_its_answer_tag(tmp_path, env):
    split, truth = env
    reasoning = "<think>Raised brows could mean fear or surprise; the mouth might be sad, even angry.</think>"

    def script(n, sha, body):
        t = truth[sha]
        if t == "disgust":
            return Reply(reasoning + " So: disgust")  # no answer tag: unparsed, never guessed
        return Reply(f"{reasoning}\n<answer>{t}</answer>")

    res, srv = _run(tmp_path, split, script, per_class=2, llm={"strategy": "reason_then_answer"})
    m = res.metrics["sample"]
    assert "<answer>" in srv.requests[0]["body"]["messages"][0]["content"][0]["text"]
    assert m.accuracy == pytest.approx(12 / 14) and m.unparsed == 2 and m.n == 14
    p = _preds(tmp_path)
    assert all(reasoning in r for r in p["raw"])  # the reasoning is kept
    assert sorted(set(p["status"])) == ["ok", "unparsed"]
    journal = (tmp_path / "r/s.llm.m/answers.jsonl").read_text()
    assert journal.count("Raised brows") == 14


@pytest.mark.parametrize("via", ["json_schema", "vllm", "vllm_guided"])
def test_structured_sends_the_constraint_and_parses_strictly(tmp_path, env, via):
    split, truth = env

    def script(n, sha, body):
        t = truth[sha]
        if t == "fear":
            return Reply("fearful")  # not exactly a class: unparsed under the strict rule
        return Reply(json.dumps({"emotion": t.upper()}) if via == "json_schema" else t)

    res, srv = _run(tmp_path, split, script, per_class=1, llm={"strategy": "structured", "structured_via": via})
    body = srv.requests[0]["body"]
    expect = {"json_schema": ("response_format", None), "vllm": ("structured_outputs", {"choice": list(CLS)}),
              "vllm_guided": ("guided_choice", list(CLS))}[via]
    assert expect[0] in body and (expect[1] is None or body[expect[0]] == expect[1])
    assert "extra_body" not in body  # merged into the JSON body by the client
    m = res.metrics["sample"]
    assert m.accuracy == pytest.approx(6 / 7) and m.unparsed == 1
    assert res.request.extra_body == (None if via == "json_schema" else {expect[0]: expect[1]})


def test_refusals_and_content_filter_blocks_are_counted_outcomes(tmp_path, env):
    split, truth = env

    def script(n, sha, body):
        t = truth[sha]
        if t == "angry":
            return Reply(refusal="I'm sorry, I can't help with that.")
        if t == "disgust":
            return Reply("I'm sorry, but I can't identify emotions of real people.")
        if t == "fear":
            return Reply("", finish_reason="content_filter")
        if t == "happy":
            return Reply("something else entirely")
        return Reply(t)

    res, _ = _run(tmp_path, split, script, per_class=2)
    m = res.metrics["sample"]
    assert (m.refused, m.filtered, m.unparsed, m.n) == (4, 2, 2, 14)
    assert m.accuracy == pytest.approx(6 / 14)  # none of them leaves the denominator
    assert res.status == "ok"  # answered: nothing to ask again
    p = _preds(tmp_path)
    got = {CLS[t]: s for t, s in zip(p.true, p["status"])}
    assert got["angry"] == got["disgust"] == "refusal" and got["fear"] == "filtered" and got["happy"] == "unparsed"
    assert "I can't help" in " ".join(p["raw"])  # the refusal's own words are kept
    kinds = sorted(u.outcome for u in res.unparsed)
    assert kinds == ["filtered"] * 2 + ["refusal"] * 4 + ["unparsed"] * 2


def test_split_sizes_follow_lian():
    sizes, n = [], 20
    while n > 1:
        n = next_size(n)
        sizes.append(n)
    assert sizes == [10, 5, 1]


def _several(truth, miscount=lambda n, k: False, shuffle=False):
    """Answers a several-image request line by line; ``miscount(n, k)`` drops a line of request n of k images."""
    def script(n, sha, body):
        imgs = images_of(body)
        if len(imgs) == 1:
            return Reply(truth[sha])
        text = lines_for(body, lambda s: truth[s], drop=1 if miscount(n, len(imgs)) else 0)
        if shuffle:  # by id, not by position
            text = "\n".join(reversed(text.splitlines()))
        return Reply(text)
    return script


def test_several_images_per_request_answer_by_position_and_id(tmp_path, env):
    split, truth = env
    res, srv = _run(tmp_path, split, _several(truth, shuffle=True), per_class=3, llm={"images_per_request": 5})
    assert len(srv.requests) == 5  # 21 images: 5 + 5 + 5 + 5 + 1
    labels = [lab for lab, _ in images_of(srv.requests[0]["body"])]
    assert labels[0].startswith("Image 1 (id ") and labels[4].startswith("Image 5 (id ")
    m = res.metrics["sample"]
    assert m.accuracy == 1.0 and m.n == 21 and res.several.requests == 4 and res.several.miscounts == 0


def test_a_miscounted_batch_is_asked_again_then_split(tmp_path, env):
    split, truth = env
    # every request of 10 images miscounts (twice: asked again once, then split into 5 + 5, which answer)
    res, srv = _run(tmp_path, split, _several(truth, miscount=lambda n, k: k == 10), per_class=3,
                    llm={"images_per_request": 10})
    sizes = [len(images_of(r["body"])) for r in srv.requests]
    assert sizes.count(10) == 4 and sizes.count(5) == 4 and sizes.count(1) == 1
    s = res.several
    assert (s.miscounts, s.splits, s.split_images) == (4, 2, 20)
    assert res.metrics["sample"].accuracy == 1.0
    journal = [json.loads(x) for x in (tmp_path / "r/s.llm.m/answers.jsonl").read_text().splitlines()[1:]]
    assert sum(j.get("kind") == "request" for j in journal) == 8  # every raw answer, miscounts included
    # paid tokens of the miscounted requests count too
    assert res.usage.prompt_tokens == 100 * len(srv.requests)


def test_a_batch_that_never_counts_right_ends_one_image_a_request(tmp_path, env):
    split, truth = env
    res, srv = _run(tmp_path, split, _several(truth, miscount=lambda n, k: True), per_class=1,
                    llm={"images_per_request": 4})
    sizes = [len(images_of(r["body"])) for r in srv.requests]
    assert sorted(sizes) == sorted([4, 4, 3, 3] + [1] * 7)  # 4 -> 1 and 3 -> 1: each part under five images
    assert res.metrics["sample"].accuracy == 1.0


def test_several_resume_and_cache_never_pay_twice(tmp_path, env):
    split, truth = env
    with FakeOpenAI(_several(truth)) as srv:
        def run(store, per=7):
            exp = llm_experiment(model="m", base_url=srv.base_url, per_class=2, llm={"images_per_request": per})
            before = len(srv.requests)
            res = ask(exp, split, RunStore(tmp_path / store), options=llm_options(tmp_path))
            return res, len(srv.requests) - before

        res, sent = run("r")
        assert sent == 2 and res.metrics["sample"].accuracy == 1.0
        res, sent = run("r")
        assert sent == 0 and res.usage.resumed_answers == 14  # the journal
        res, sent = run("r2")
        assert sent == 0 and res.usage.cache_hits == 2 and res.metrics["sample"].accuracy == 1.0  # cached per request
        res, sent = run("r3", per=1)
        assert sent == 14  # one image a request never reuses an answer given among several


def test_refused_batch_counts_for_each_image(tmp_path, env):
    split, truth = env

    def script(n, sha, body):
        return Reply(refusal="I can't help with that.") if n == 0 else _several(truth)(n, sha, body)

    res, _ = _run(tmp_path, split, script, per_class=1, concurrency=1, llm={"images_per_request": 4})
    m = res.metrics["sample"]
    assert m.refused == 4 and m.accuracy == pytest.approx(3 / 7)


def test_estimate_and_cap_count_requests_of_several_images(tmp_path, env):
    split, _ = env
    one = llm_experiment(model="m", base_url="http://127.0.0.1:9/v1", per_class=3, price_input_per_1m=1.0,
                         price_output_per_1m=1.0)
    five = llm_experiment(model="m", base_url="http://127.0.0.1:9/v1", per_class=3, price_input_per_1m=1.0,
                          price_output_per_1m=1.0, llm={"images_per_request": 5})
    e1, e5 = estimate_llm_experiment(one, split), estimate_llm_experiment(five, split)
    assert (e1.requests, e5.requests) == (21, 5)
    assert e5.estimated_prompt_tokens < e1.estimated_prompt_tokens  # the prompt text is sent 5 times, not 21
    assert e5.estimated_completion_tokens == e1.estimated_completion_tokens
    assert e5.max_cost_usd == pytest.approx(e1.max_cost_usd, rel=0.2)  # budget per image: the worst case holds


def test_several_images_under_max_cost_stop_whole_requests(tmp_path, env):
    split, truth = env
    with FakeOpenAI(_several(truth)) as srv:
        exp = llm_experiment(model="m", base_url=srv.base_url, per_class=2, concurrency=1, max_completion_tokens=10,
                             price_input_per_1m=10_000.0, price_output_per_1m=0.0, llm={"images_per_request": 7})
        # the fake bills 100 prompt tokens a request: $1; the reservation is the estimate of 7 images (> $1)
        res = ask(exp, split, RunStore(tmp_path / "r"), options=llm_options(tmp_path, max_cost=1.0))
    assert len(srv.requests) == 0 and res.status == "failed" and "--max-cost" in res.error
    assert res.metrics["sample"].not_sent == 14


def test_strategy_ask_shapes():
    o = StrategyOptions(CLS, top_k=5)
    many = strategy("structured").ask(o, ["a", "b"])
    assert many.response_format["json_schema"]["schema"]["required"] == ["answers"]
    assert strategy("rank").split("Image 1 (id a): sad, fear\nImage 2 (id b): happy", ["a", "b"]) == ["sad, fear", "happy"]
    assert strategy("label").split("Image 1 (id zz): sad\nImage 2 (id b): happy", ["a", "b"]) is None  # unknown id
    assert np.array_equal(strategy("rank").parse("1. Happy 2. not sad 3. Fear", o), ["happy", "fear"])


def test_report_shows_outcome_rates_with_cis_and_compares_one_and_several_per_request(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from ferbench.cli import main

    monkeypatch.setenv("FAKE_KEY", "k-0123")
    why = "<think>It could be fear, or surprise, or sad.</think>"

    def script(n, sha, body):
        imgs = images_of(body)
        if len(imgs) == 1:
            return Reply(refusal="I can't help with that.") if n % 3 == 0 else Reply(f"{why}<answer>happy</answer>")
        return Reply(why + "<answer>\n" + lines_for(body, lambda s: "sad") + "\n</answer>")

    with FakeOpenAI(script) as srv:
        eps = [{"model": "m", "label": "one", "base_url": srv.base_url, "api_key_env": "FAKE_KEY"},
               {"model": "m", "label": "five", "base_url": srv.base_url, "api_key_env": "FAKE_KEY",
                "images_per_request": 5}]
        llm = json.dumps({"endpoints": eps, "sample": {"per_class": 2}, "strategy": "reason_then_answer"})
        suite = tmp_path / "s.yaml"
        suite.write_text(one_study_suite(" [{model: basic_cnn}]", data="synthetic:700:5", defaults="{epochs: 1}",
                                         split="{kind: official, train_per_class: 10}", name="r") + f"    llm: {llm}\n")
        r = CliRunner().invoke(main, ["run", str(suite), "--results-dir", str(tmp_path / "res")])
    assert r.exit_code == 0, r.output
    report = (tmp_path / "res/r/report.md").read_text()
    assert "What became of each LLM request (rates with 95% CIs)" in report
    # one image in three refused (the fake's request numbers 0, 3, 6 ... of the one-image endpoint)
    refused = re.findall(r"^\| one +\| refused +\| +(\d+)/14 \| +([\d.]+) \| +\[([\d.]+), ([\d.]+)\] \|$",
                         report, re.MULTILINE)
    assert len(refused) == 1
    k = int(refused[0][0])
    lo, hi = wilson_interval(k, 14)
    assert refused[0][1:] == (f"{100 * k / 14:.2f}", f"{100 * lo:.1f}", f"{100 * hi:.1f}")
    assert re.search(r"^\| one +\| answered with a class +\| +%d/14 \|" % (14 - k), report, re.MULTILINE)
    assert "LLM against LLM on the same images (exact McNemar)" in report
    assert re.search(r"^\| (one|five) \(LLM\) +\| (five|one) \(LLM\) +\| +14 \|", report, re.MULTILINE)
    assert "LLM prompt strategies and images per request" in report and "reason_then_answer" in report


def test_manifest_prompts_and_candidate_labels(tmp_path, env):
    from dataset_layouts import write_rafdb

    from ferbench.data import load_data
    from ferbench.data.splits import make_split

    words = {1: "surprise", 2: "fear", 3: "disgust", 4: "happiness", 5: "sadness", 6: "anger", 7: "neutral"}
    codes = [1 + k % 7 for k in range(14)]
    root = write_rafdb(tmp_path / "raf", [(f"train_{k:05d}.jpg", 1 + k % 7) for k in range(1, 15)]
                       + [(f"test_{k + 1:04d}.jpg", c) for k, c in enumerate(codes)])
    items = [{"image_path": f"/RAF-DB/aligned/test_{k + 1:04d}_aligned.jpg", "true_label": words[c],
              "prompt": f"Item {k}: which expression? Think in <think></think>, answer in <answer></answer>.",
              "candidate_labels": [w for w in words.values() if k != 0 or w != words[c]]}  # item 0: truth left out
             for k, c in enumerate(codes)]
    (tmp_path / "qa.json").write_text(json.dumps(items))
    split = make_split(load_data(str(root)), "manifest", manifest=str(tmp_path / "qa.json"), val_fraction=None)

    def script(n, sha, body):  # answers each item's true class, in the dataset's words
        text = body["messages"][0]["content"][0]["text"]
        k = int(text.split(":")[0].split()[1])
        return Reply(f"<think>maybe fear, maybe anger</think><answer>{words[codes[k]].title()}</answer>")

    with FakeOpenAI(script) as srv:
        exp = llm_experiment(model="m", base_url=srv.base_url, per_class=None, prompt="manifest",
                             llm={"strategy": "reason_then_answer"})
        res = ask(exp, split, RunStore(tmp_path / "r"), options=llm_options(tmp_path))
        sent = sorted(r["body"]["messages"][0]["content"][0]["text"] for r in srv.requests)
    assert sent == sorted(i["prompt"] for i in items)  # each image asked with its own item's prompt
    m = res.metrics["sample"]
    assert m.n == 14 and m.unparsed == 1 and m.accuracy == pytest.approx(13 / 14)  # item 0: not a candidate
    assert res.prompt.startswith("manifest: each image's own prompt")
    # a split without item prompts fails loudly, sending nothing
    with FakeOpenAI(script) as srv:
        exp = llm_experiment(model="m", base_url=srv.base_url, per_class=1, prompt="manifest")
        res = ask(exp, env[0], RunStore(tmp_path / "r2"), options=llm_options(tmp_path))
        assert res.status == "failed" and "needs a split of kind manifest" in res.error and not srv.requests


def test_structured_several_images_answer_as_a_json_list(tmp_path, env):
    split, truth = env

    def script(n, sha, body):
        imgs = images_of(body)
        if len(imgs) == 1:
            return Reply(json.dumps({"emotion": truth[sha]}))
        ids = [lab.split("(id ")[1].rstrip(")") for lab, _ in imgs]
        answers = [{"image": k + 1, "id": i, "emotion": truth[s]} for k, (i, (_, s)) in enumerate(zip(ids, imgs))]
        return Reply(json.dumps({"answers": answers[::-1]}))  # out of order: matched by id

    res, srv = _run(tmp_path, split, script, per_class=1, llm={"strategy": "structured", "images_per_request": 4})
    fmt = srv.requests[0]["body"]["response_format"]
    assert fmt["json_schema"]["name"] == "fer_answers" and len(srv.requests) == 2
    assert res.metrics["sample"].accuracy == 1.0 and res.several.miscounts == 0
