import hashlib
import json
import re
import socket

import numpy as np
import pytest
from click.testing import CliRunner
from fake_openai import (  # noqa: F401 - autouse fixture
    ask,
    FakeOpenAI,
    Reply,
    correct,
    llm_experiment,
    synthetic_split,
    truth_by_sha,
)

from ferbench import CLASSES
from ferbench.cli import main
from ferbench.data import load_data
from ferbench.llm.client import Endpoint
from ferbench.llm.parse import parse_answer
from ferbench.llm.query import LLMRunOptions, png_bytes
from ferbench.llm.sampler import stratified_sample
from ferbench.store import RunStore, parse_result
from ferbench.schema.llm import EndpointConfig

SECRET = "sk-test-" + "S3CR3T" * 6
DATA = "synthetic:3500:5"  # >= 5 disgust faces in PrivateTest


@pytest.mark.parametrize("text,cls", [
    ("Happiness", "happy"), ("angry.", "angry"), ("The person looks sad", "sad"), ("surprised", "surprise"),
    ("fearful", "fear"), ("disgusted", "disgust"), ("anger", "angry"), ("  NEUTRAL!  ", "neutral"),
    ('{"emotion": "fear"}', "fear"), ("They seem happy, very happy.", "happy"),
    ("not happy", None), ("happy or sad", None), ("I cannot determine emotions", None), ("", None), (None, None),
    ("<script>alert(1)</script>", None),
])
def test_parse_table(text, cls):
    assert parse_answer(text) == cls


def test_sample_is_stratified_and_deterministic():
    d = load_data(DATA)
    test = d.usage == "PrivateTest"
    labels, ids = d.labels[test], d.ids[test]
    a, _ = stratified_sample(labels, ids, 5, 0, 7)
    b, _ = stratified_sample(labels, ids, 5, 0, 7)
    c, _ = stratified_sample(labels, ids, 5, 1, 7)
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()
    assert np.bincount(labels[a], minlength=7).tolist() == [5] * 7
    perm = np.random.default_rng(3).permutation(len(ids))  # load order does not matter
    d2, _ = stratified_sample(labels[perm], ids[perm], 5, 0, 7)
    assert sorted(ids[perm][d2]) == sorted(ids[a])


def _truth_by_sha(size=48):
    d = load_data(DATA)
    return {hashlib.sha256(png_bytes(img, size)).hexdigest(): CLASSES[y] for img, y in zip(d.images, d.labels)}


def _suite(tmp_path, base_url, **llm):
    llm_yaml = json.dumps({"endpoints": [{"model": "fake-vision", "base_url": base_url, "api_key_env": "FAKE_KEY",
                                          "price_input_per_1m": 1.0, "price_output_per_1m": 2.0}],
                           "sample": {"per_class": 5}, "max_retries": 3, **llm})
    p = tmp_path / "llm.yaml"
    p.write_text(f"""name: llmtest
data: {DATA}
defaults: {{epochs: 1}}
studies:
  - name: s
    split: {{kind: official, train_per_class: 10}}
    experiments: [{{model: mlp}}]
    llm: {llm_yaml}
""")
    return p


def _answers(truth):
    """Correct for angry/happy/fear, wrong (always 'neutral') otherwise; sad verbose; disgust garbage."""
    def script(n, sha, body):
        t = truth[sha]
        if t in ("angry", "happy", "fear"):
            return Reply(t.capitalize() + ".")
        if t == "sad":
            return Reply("The person looks sad")
        if t == "disgust":
            return Reply("<script>alert('x')</script>")
        return Reply("neutral")
    return script


def _run(suite, tmp_path, *extra):
    return CliRunner().invoke(main, ["run", str(suite), "--results-dir", str(tmp_path / "res"), *extra],
                              catch_exceptions=False)


def test_end_to_end_table2_cache_and_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", SECRET)
    truth = _truth_by_sha()
    with FakeOpenAI(_answers(truth)) as srv:
        suite = _suite(tmp_path, srv.base_url)
        r = _run(suite, tmp_path)
        assert r.exit_code == 0, r.output
        assert len(srv.requests) == 35
        assert all(q["auth"] == f"Bearer {SECRET}" for q in srv.requests)
        body = srv.requests[0]["body"]
        assert body["temperature"] == 0 and body["max_tokens"] == 1024  # a local server: max_tokens
        assert body["messages"][0]["content"][0]["text"].startswith(
            "From the image provided, what emotion")
        res = parse_result(tmp_path / "res/llmtest/s.llm.fake-vision/result.json")
        assert set(res.files) == {"predictions.csv", "sample_images.npz"}  # written by the store, vouched for
        m = res.metrics["sample"]
        # implied by the script: angry, fear, happy, sad right (5 each) -> 20/35; surprise wrong; neutral right
        expected = {"angry": 1, "disgust": 0, "fear": 1, "happy": 1, "sad": 1, "surprise": 0, "neutral": 1}
        assert m.per_class_accuracy == [expected[c] for c in CLASSES]
        assert m.accuracy == pytest.approx(25 / 35) and m.unparsed == 5
        # the no-answer column: every row sums to the images of that class
        assert [sum(r) for r in m.confusion] == [5] * 7 and m.confusion[1][7] == 5
        assert m.confusion_no_answer is True
        assert res.usage.prompt_tokens == 3500 and res.usage.estimated_cost_usd == pytest.approx(
            (3500 * 1.0 + 70 * 2.0) / 1e6)
        assert res.adaptations == [] and 0.3 < m.min_detectable_difference < 0.4
        md = (tmp_path / "res/llmtest/report.md").read_text()
        row = next(line for line in md.splitlines()  # its Table 2 row (the VLM summary names it too)
                   if line.startswith("| fake-vision (LLM)") and "5/5" in line)
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1:9] == ["5/5", "0/5", "5/5", "5/5", "5/5", "0/5", "5/5", "71.43"]
        html = (tmp_path / "res/llmtest/report.html").read_text()
        assert "<script>alert" not in html and "&lt;script&gt;alert(" in html
        # the key is never written anywhere under the results directory
        for f in (tmp_path / "res").rglob("*"):
            if f.is_file():
                assert SECRET.encode() not in f.read_bytes(), f
        # re-run after deleting the LLM result: answers come from the cache, zero requests
        for f in (tmp_path / "res/llmtest/s.llm.fake-vision").iterdir():
            f.unlink()
        r = _run(suite, tmp_path)
        assert r.exit_code == 0, r.output
        assert len(srv.requests) == 35
        res2 = parse_result(tmp_path / "res/llmtest/s.llm.fake-vision/result.json")
        assert res2.usage.cache_hits == 35 and res2.metrics["sample"] == m
        # (--refresh-llm asking again: test_llm_faults.py::test_refresh_asks_finished_experiments_again)



def _opts(tmp_path, **kw):
    return LLMRunOptions(cache_dir=tmp_path / "cache", sleep=lambda s: None, **kw)


def _png():
    return png_bytes(np.zeros((48, 48), np.uint8), 48)


def test_retries_honour_retry_after_and_recover():
    calls = []

    def script(n, sha, body):
        return [Reply(status=429, headers={"Retry-After": "2"}), Reply(status=500), Reply(status=503),
                Reply("happy")][min(n, 3)]

    with FakeOpenAI(script) as srv:
        e = Endpoint(EndpointConfig(model="m", base_url=srv.base_url), api_key="k", base_url=srv.base_url,
                     prompt="p", response_format=None, timeout=5, max_retries=5, base_delay=0.01, sleep=calls.append)
        ans = e.ask(_png(), 5)
    assert ans.text == "happy" and ans.attempts == 4 and ans.status == "ok"
    assert calls[0] == 2.0 and all(c <= 0.04 for c in calls[1:])


def test_hard_failure_recorded_rest_continue_and_timeouts(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", SECRET)
    split = synthetic_split()
    truth = truth_by_sha(split)

    def script(n, sha, body):
        t = truth[sha]
        if t == "disgust":
            return Reply(status=400)  # a hard error for these images only
        return Reply(t, delay=1.5 if t == "surprise" else 0)

    with FakeOpenAI(script) as srv:
        exp = llm_experiment(model="m", base_url=srv.base_url, timeout=0.4, max_retries=1, concurrency=8)
        res = ask(exp, split, RunStore(tmp_path / "r"), options=_opts(tmp_path))
    assert res.status == "failed" and "6 of 21 image(s) got no answer" in res.error
    assert res.metrics["sample"].errors == 6 and res.metrics["sample"].accuracy == pytest.approx(15 / 21)
    pred = (tmp_path / "r/s.llm.m/predictions.csv").read_text()
    assert pred.count(",error,HTTP 400") == 3 and pred.count("APITimeoutError after 2 attempts") == 3


def test_crash_mid_run_resumes_without_asking_again(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", SECRET)
    split = synthetic_split()
    truth = truth_by_sha(split)
    state = {"healthy": False}

    def script(n, sha, body):
        if not state["healthy"] and n >= 12:
            return Reply(status=500)  # the "crash": nothing after the 12th answer gets through
        return Reply(truth[sha])

    store = RunStore(tmp_path / "r")
    with FakeOpenAI(script) as srv:
        exp = llm_experiment(model="m", base_url=srv.base_url, max_retries=0, concurrency=1)
        ask(exp, split, store, options=_opts(tmp_path, no_cache=True))
        answers = (tmp_path / "r/s.llm.m/answers.jsonl").read_text().splitlines()
        assert "config_hash" in json.loads(answers[0]) and len(answers[1:]) == 12
        state["healthy"] = True
        before = len(srv.requests)
        res = ask(exp, split, store, options=_opts(tmp_path, no_cache=True))
        assert len(srv.requests) - before == 21 - 12
    assert res.status == "ok" and res.usage.resumed_answers == 12
    assert res.metrics["sample"].accuracy == 1.0


def test_missing_key_skips_without_sending(tmp_path, monkeypatch):
    monkeypatch.delenv("FAKE_KEY", raising=False)
    with FakeOpenAI() as srv:
        exp = llm_experiment(model="m", base_url=srv.base_url)
        res = ask(exp, synthetic_split(), RunStore(tmp_path / "r"), options=_opts(tmp_path))
        assert not srv.http_log
    assert res.status == "skipped" and "$FAKE_KEY is not set" in res.reason


def test_unreachable_endpoint_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", SECRET)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    exp = llm_experiment(model="m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    res = ask(exp, synthetic_split(), RunStore(tmp_path / "r"), options=_opts(tmp_path))
    assert res.status == "failed" and re.search("unreachable", res.error)


def test_dry_run_sends_nothing_and_estimates(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", SECRET)
    with FakeOpenAI() as srv:
        exp = llm_experiment(model="m", base_url=srv.base_url, price_input_per_1m=2.0, price_output_per_1m=8.0)
        res = ask(exp, synthetic_split(), RunStore(tmp_path / "r"), options=_opts(tmp_path), dry_run=True)
        assert not srv.http_log
    est = res.estimate
    # prompt: ceil(len/4) + 12 framing + 85 image tokens (48 px, low detail); 8 completion tokens (no reasoning)
    from ferbench.llm.prompts import PROMPTS
    pt = -(-len(PROMPTS["paper"]) // 4) + 12 + 85
    assert est.requests == 21 and est.prompt_tokens_per_request == pt
    assert est.estimated_cost_usd == pytest.approx(21 * (pt * 2.0 + 8 * 8.0) / 1e6)
    assert est.max_cost_usd == pytest.approx(21 * (pt * 2.0 + 1024 * 8.0) / 1e6)
    assert res.status == "skipped" and "21 requests would be sent" in res.reason
    assert not (tmp_path / "r/s.llm.m/answers.jsonl").exists()


def test_key_echoed_in_an_error_or_an_answer_is_redacted(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", SECRET)
    echo = {"error": {"message": f"Incorrect API key provided: {SECRET}. sk-test-S3CR****3CR3T",
                      "type": "invalid_request_error", "code": "invalid_api_key"}}
    with FakeOpenAI(lambda n, sha, body: Reply(status=401, error=echo)) as srv:
        exp = llm_experiment(model="m", base_url=srv.base_url)
        res = ask(exp, synthetic_split(), RunStore(tmp_path / "r"), options=_opts(tmp_path))
        assert len(srv.requests) == 1  # a 401 stops the endpoint: nothing else is sent
    text = res.model_dump_json()
    assert "AuthenticationError" in text and "[redacted" in text and SECRET not in text and "S3CR****" not in text
    # a model that repeats the key in its answer (a prompt-injected image, a logging proxy ...)
    with FakeOpenAI(lambda n, sha, body: Reply(f"happy, and your key is {SECRET}")) as srv:
        exp = llm_experiment("s.llm.m2", model="m", base_url=srv.base_url)
        ask(exp, synthetic_split(), RunStore(tmp_path / "r"), options=_opts(tmp_path))
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f
    assert "[redacted]" in (tmp_path / "r/s.llm.m2/predictions.csv").read_text()


def test_an_llm_result_stored_before_the_typed_fields_reads_and_is_written_back_the_same(tmp_path, monkeypatch):
    """Endpoint, request, estimate, batch and adaptations were dicts in result.json; the typed fields read
    those files (no format bump, no re-run) and write exactly the same JSON (a field not sent stays absent)."""
    from fake_openai import correct, truth_by_sha

    monkeypatch.setenv("FAKE_KEY", SECRET)
    split, store = synthetic_split(), RunStore(tmp_path / "r")
    with FakeOpenAI(correct(truth_by_sha(synthetic_split()))) as srv:
        res = ask(llm_experiment(model="m", base_url=srv.base_url, per_class=1), split, store, options=_opts(tmp_path))
    raw = json.loads((tmp_path / "r/s.llm.m/result.json").read_text())
    old = {"request": {"model": "m", "max_tokens": 1024, "temperature": 0.0},  # as the dict code wrote them
           "batch": {"batch_id": "batch_1", "status": "completed", "requests": 6, "input_file_id": "file-1",
                     "cost_usd": None, "failed_lines": 0},
           "adaptations": [{"param": "temperature", "code": "unsupported_value", "action": "drop (server default)",
                            "server_said": "only the default (1) is supported"}],
           "estimate": {"requests": 7, "batch_requests": 6, "prompt_tokens_per_request": 151,
                        "completion_tokens_per_request": 8, "completion_assumption": "assumed: a one-word answer",
                        "estimated_prompt_tokens": 1057, "estimated_completion_tokens": 56, "estimated_cost_usd": None,
                        "max_cost_usd": None, "prices_per_1m": None, "batch_price_factor": 0.5}}
    assert {k: raw[k] for k in ("request", "estimate")} == {"request": old["request"], "estimate": raw["estimate"]}
    assert set(raw["estimate"]) == set(old["estimate"]) and set(raw["endpoint"]) == set(EndpointConfig.model_fields)
    (tmp_path / "r/s.llm.m/result.json").write_text(json.dumps({**raw, **old}))
    back = store.read_result("s.llm.m")
    assert back.adaptations[0].description == "temperature: drop (server default)" and back.batch.requests == 6
    assert back.model_dump(mode="json") == {**raw, **old} and res.status == "ok"
