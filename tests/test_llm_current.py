"""Today's vision models: current-model refusals, hidden reasoning, the Responses API, providers, cache keys."""
import dataclasses

import numpy as np
import pytest
from fake_openai import (
    ask,
    llm_options,
    KEY,
    FakeOpenAI,
    Reply,
    correct,
    llm_experiment,
)

from ferbench.llm.cache import cache_key
from ferbench.llm.client import Adaptations, default_token_param, request_body
from ferbench.llm.prompts import JSON_SCHEMA
from ferbench.store import RunStore
from ferbench.schema.llm import EndpointConfig


def test_gpt5_with_default_settings_answers_every_image_and_records_adaptations(tmp_path, env):
    split, truth = env
    with FakeOpenAI(correct(truth)) as srv:
        exp = llm_experiment(model="gpt-5", base_url=srv.base_url, deviations=["train capped"])
        res = ask(exp, split, RunStore(tmp_path / "r"), options=llm_options(tmp_path))
        sent = [q["body"] for q in srv.requests]
    m = res.metrics["sample"]
    assert res.status == "ok" and m.accuracy == 1.0 and m.answered == 21
    # the first image alone taught the two refusals; every later request was accepted
    assert len(sent) == 21 + 2
    assert "max_tokens" in sent[0] and sent[1]["max_completion_tokens"] == 1024 and "temperature" in sent[1]
    assert all("temperature" not in b and "max_tokens" not in b for b in sent[2:])
    assert [(a.param, a.code) for a in res.adaptations] == [
        ("max_tokens", "unsupported_parameter"), ("temperature", "unsupported_value")]
    assert res.deviations[0] == "train capped"
    assert any("suite asked for temperature 0" in d for d in res.deviations)
    assert res.request.model_dump() == {"model": "gpt-5", "max_completion_tokens": 1024}
    assert res.usage.reasoning_tokens == 21 * 300


def test_adaptations_are_remembered_per_endpoint_across_runs(tmp_path, env):
    split, truth = env
    with FakeOpenAI(correct(truth)) as srv:
        a = llm_experiment("a.llm.m", model="o4-mini", base_url=srv.base_url, per_class=1)
        ask(a, split, RunStore(tmp_path / "r1"), options=llm_options(tmp_path))
        refused = len(srv.requests) - 7
        b = llm_experiment("b.llm.m", model="o4-mini", base_url=srv.base_url, per_class=1, prompt="json")
        n0 = len(srv.requests)
        res = ask(b, split, RunStore(tmp_path / "r2"), options=llm_options(tmp_path))
        assert refused == 2 and len(srv.requests) - n0 == 7  # no refusal the second time
    assert res.metrics["sample"].accuracy == 1.0 and len(res.adaptations) == 2


def test_reasoning_burns_the_budget_truncated_then_asked_again(tmp_path, env):
    split, truth = env
    with FakeOpenAI(correct(truth)) as srv:
        srv.reasoning["medium"] = 1500  # more than the default 1024-token budget
        exp = llm_experiment(model="gpt-5-mini", base_url=srv.base_url, temperature=None,
                             token_param="max_completion_tokens", price_input_per_1m=0.25, price_output_per_1m=2.0)
        res = ask(exp, split, RunStore(tmp_path / "r"), options=llm_options(tmp_path))
        budgets = [q["body"]["max_completion_tokens"] for q in srv.requests]
    assert budgets.count(1024) == 21 and budgets.count(4096) == 21
    m = res.metrics["sample"]
    assert m.accuracy == 1.0 and m.truncated == 0 and res.usage.truncated_retries == 21
    # both requests of every image are paid for: 1024 burnt + 1502 used
    assert res.usage.completion_tokens == 21 * (1024 + 1502)
    assert res.usage.estimated_cost_usd == pytest.approx(21 * (200 * 0.25 + (1024 + 1502) * 2.0) / 1e6)


def test_an_old_16_token_budget_is_recorded_as_truncated_not_unparsed(tmp_path, env):
    split, truth = env
    with FakeOpenAI(correct(truth)) as srv:
        exp = llm_experiment(model="gpt-5.1", base_url=srv.base_url, max_completion_tokens=16, temperature=None)
        res = ask(exp, split, RunStore(tmp_path / "r"), options=llm_options(tmp_path))
    m = res.metrics["sample"]
    assert m.truncated == 21 and m.unparsed == 0 and res.unparsed == []
    assert [row[-1] for row in m.confusion] == [3] * 7  # all in the no-answer column
    pred = (tmp_path / "r/s.llm.m/predictions.csv").read_text().splitlines()
    assert all(line.split(",")[5] == "truncated" and line.endswith(",length") for line in pred[1:])
    assert res.status == "ok"  # final answers: a re-run does not pay for them again


def test_responses_api_path(tmp_path, env):
    split, truth = env
    with FakeOpenAI(correct(truth)) as srv:
        srv.reasoning["low"] = 1100
        exp = llm_experiment(model="gpt-5-mini", base_url=srv.base_url, api="responses", reasoning_effort="low",
                             prompt="json", per_class=2)
        res = ask(exp, split, RunStore(tmp_path / "r"), options=llm_options(tmp_path))
        reqs = list(srv.requests)
    assert {q["kind"] for q in reqs} == {"responses"}
    first = reqs[0]["body"]
    assert first["reasoning"] == {"effort": "low"} and first["max_output_tokens"] == 1024
    assert first["text"]["format"]["type"] == "json_schema" and first["text"]["format"]["name"] == "fer_answer"
    assert first["input"][0]["content"][1]["type"] == "input_image"
    # temperature 0 refused once; incomplete (max_output_tokens) answers asked again with 4096
    assert res.adaptations[0].param == "temperature"
    assert res.metrics["sample"].accuracy == 1.0 and res.usage.truncated_retries == 14


@pytest.mark.parametrize("profile,path,model,kw", [
    ("azure", "", "gpt-5-prod", {"provider": "azure", "api_version": "2025-04-01-preview"}),
    ("openai", "/v1beta/openai/", "gemini-2.5-flash", {}),  # Google's OpenAI-compatible endpoint
    ("anthropic", "/v1/", "claude-sonnet-4-5", {}),
    ("local", "/v1", "qwen2.5-vl", {}),  # vLLM / Ollama / LM Studio
])
def test_providers(tmp_path, env, profile, path, model, kw):
    split, truth = env
    with FakeOpenAI(correct(truth), profile=profile) as srv:
        exp = llm_experiment(model=model, base_url=srv.root + path, per_class=1, **kw)
        res = ask(exp, split, RunStore(tmp_path / "r"), options=llm_options(tmp_path))
        log = list(srv.http_log)
        reqs = list(srv.requests)
    assert res.metrics["sample"].accuracy == 1.0, res.error
    if profile == "azure":
        assert all(p == "/openai/deployments/gpt-5-prod/chat/completions" for _, p in log)
        assert reqs[0]["auth"] == KEY  # api-key header, not Bearer
        assert "max_completion_tokens" in reqs[0]["body"]  # Azure takes the current name from the start
        assert [a.param for a in res.adaptations] == ["temperature"]
    else:
        assert all(p == path.rstrip("/") + "/chat/completions" for _, p in log)
        assert reqs[0]["auth"] == f"Bearer {KEY}" and reqs[0]["body"]["max_tokens"] == 1024
        assert res.adaptations == [] and reqs[0]["body"]["temperature"] == 0


def test_server_without_usage_counts_the_worst_case(tmp_path, env):
    split, truth = env
    with FakeOpenAI(correct(truth), profile="local", usage=False) as srv:
        exp = llm_experiment(model="llava", base_url=srv.base_url, per_class=1, price_input_per_1m=1.0,
                             price_output_per_1m=1.0)
        res = ask(exp, split, RunStore(tmp_path / "r"), options=llm_options(tmp_path, max_cost=1.0))
    est = res.estimate.prompt_tokens_per_request
    assert res.metrics["sample"].accuracy == 1.0
    assert res.usage.cost_this_run_usd == pytest.approx(7 * (est + 1024) / 1e6)


def test_default_token_param():
    ep = EndpointConfig(model="m")
    assert default_token_param(ep, None) == "max_completion_tokens"
    assert default_token_param(ep, "https://api.openai.com/v1") == "max_completion_tokens"
    assert default_token_param(ep, "http://localhost:11434/v1") == "max_tokens"
    assert default_token_param(EndpointConfig(model="m", token_param="max_completion_tokens"), "http://x") \
        == "max_completion_tokens"


def test_schema_errors_are_clear():
    assert EndpointConfig(model="m", max_tokens=16).max_completion_tokens == 16  # the older name
    with pytest.raises(ValueError, match="max_completion_tokens only"):
        EndpointConfig(model="m", max_tokens=16, max_completion_tokens=32)
    with pytest.raises(ValueError, match="needs api_version"):
        EndpointConfig(model="m", provider="azure")
    with pytest.raises(ValueError, match="Responses API"):
        EndpointConfig(model="m", api="responses", token_param="max_tokens")
    with pytest.raises(ValueError):
        EndpointConfig(model="m", reasoning_effort="extreme")


def test_cache_key_covers_every_field():
    ep = EndpointConfig(model="m", reasoning_effort="low")
    ad = Adaptations("max_tokens")
    server = {"base_url": "http://a/v1", "provider": "openai", "api_version": None, "api": "chat"}
    png = b"\x89PNG-1"

    def key(ep=ep, ad=ad, server=server, png=png, prompt="p", fmt=None):
        return cache_key(server=server, image=png, request=request_body(ep, ad, prompt=prompt, response_format=fmt,
                                                                          png=None, budget=ep.max_completion_tokens))

    k0 = key()
    variants = [key(ep=ep.model_copy(update={f: v})) for f, v in [
        ("model", "n"), ("temperature", 0.5), ("temperature", None), ("max_completion_tokens", 64),
        ("reasoning_effort", "high"), ("detail", "high")]]
    variants += [key(ep=EndpointConfig(model="m", reasoning_effort="low", api="responses"))]
    variants += [key(ad=Adaptations("max_completion_tokens")), key(ad=Adaptations("max_tokens", {"reasoning_effort"}))]
    # keyed by the request as sent: temperature None and a dropped temperature are the same request
    assert key(ep=ep.model_copy(update={"temperature": None})) == key(ad=Adaptations("max_tokens", {"temperature"}))
    variants += [key(server={**server, f: v}) for f, v in
                 [("base_url", "http://b/v1"), ("provider", "azure"), ("api_version", "2025"), ("api", "responses")]]
    variants += [key(png=b"\x89PNG-2"), key(prompt="q"), key(fmt=JSON_SCHEMA)]
    assert len({k0, *variants}) == len(variants) + 1
    assert key() == k0  # and it is stable


def test_changed_prompt_asks_every_image_again(tmp_path, env):
    split, truth = env
    store = RunStore(tmp_path / "r")
    with FakeOpenAI(correct(truth)) as srv:
        ask(llm_experiment(model="m", base_url=srv.base_url), split, store, options=llm_options(tmp_path))
        assert len(srv.requests) == 21
        ask(llm_experiment(model="m", base_url=srv.base_url), split, store, options=llm_options(tmp_path))
        assert len(srv.requests) == 21  # same config: all from the journal
        res = ask(llm_experiment(model="m", base_url=srv.base_url, prompt="json"), split, store,
                                 options=llm_options(tmp_path))
        assert len(srv.requests) == 42 and res.usage.resumed_answers == 0


def test_changed_images_under_the_same_ids_are_asked_again(tmp_path, env):
    split, _ = env
    store = RunStore(tmp_path / "r")
    with FakeOpenAI(lambda n, sha, body: Reply("happy")) as srv:
        exp = llm_experiment(model="m", base_url=srv.base_url, per_class=1)
        ask(exp, split, store, options=llm_options(tmp_path, no_cache=True))
        test = split.test.subset(np.arange(len(split.test.ids)))
        test.images = 255 - test.images
        flipped = dataclasses.replace(split, test=test)
        ask(exp, flipped, store, options=llm_options(tmp_path, no_cache=True))
        assert len(srv.requests) == 14


def test_pairwise_mcnemar_on_shared_images():
    from ferbench.llm.compare import pairwise_mcnemar
    from ferbench.metrics import min_detectable_difference

    ids = np.array([f"i{n}" for n in range(40)])
    t = np.arange(40) % 7
    cnn = (ids, t, t.copy())  # all right
    small = (ids[:10], t[:10], np.where(np.arange(10) < 5, t[:10], -1))  # 5 right, 5 without answer
    big = (ids[::-1], t[::-1], np.where(np.arange(40) % 2 == 0, t[::-1], (t[::-1] + 1) % 7))
    rows = pairwise_mcnemar({"cnn": cnn, "A": small, "B": big}, ["A", "B"], "cnn")
    by = {(r["a"], r["b"]): r for r in rows}
    assert set(by) == {("A", "cnn"), ("B", "cnn"), ("A", "B")}
    assert by[("A", "cnn")]["n"] == 10 and by[("A", "cnn")]["c_only_b_right"] == 5
    assert by[("B", "cnn")]["n"] == 40 and by[("B", "cnn")]["acc_a"] == 0.5
    assert by[("A", "B")]["n"] == 10  # only the images both were asked about
    assert min_detectable_difference(35, 0.5) == pytest.approx(0.335, abs=0.001)
    assert min_detectable_difference(7178, 0.5) == pytest.approx(0.0234, abs=0.0005)


def test_remembered_adaptations_are_checked():
    ad = Adaptations.from_state({"token_param": "rm -rf", "dropped": ["temperature", "model", 3],
                                 "notes": [{"param": "temperature", "code": "unsupported_value"}, {"no": "param"}, 7]},
                                "max_tokens")
    assert ad.token_param == "max_tokens" and ad.dropped == {"temperature"} and len(ad.notes) == 1
    assert Adaptations.from_state({"dropped": "temperature"}, "max_tokens").dropped == set()
