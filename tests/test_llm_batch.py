"""The whole test set through the OpenAI Batch API (files + batches on loopback, the real ``openai`` client)."""
import json

import numpy as np
import pytest
from fake_openai import (
    ask,
    FakeOpenAI,
    llm_options,
    Reply,
    correct,
    llm_experiment,
)

from ferbench.llm.query import estimate_llm_experiment
from ferbench.store import RunStore, read_predictions

PRICES = {"price_input_per_1m": 1.25, "price_output_per_1m": 10.0}


def test_whole_test_set_through_a_batch_with_some_failed_lines(tmp_path, env):
    split, truth = env
    n = len(split.test.ids)  # 144: the whole PrivateTest partition, not a 5-per-class sample
    broken = {"on": True}

    def script(i, sha, body):
        if broken["on"] and truth[sha] == "fear" and i > 0:
            return Reply(status=500)  # these lines end in the batch's error file
        return Reply(truth[sha])

    store = RunStore(tmp_path / "r")
    with FakeOpenAI(script, batch_polls=2) as srv:
        exp = llm_experiment(model="gpt-5-mini", base_url=srv.base_url, per_class=None, batch=True,
                             batch_wait=30, temperature=None, **PRICES)
        est = estimate_llm_experiment(exp, split)
        assert est.requests == n and est.batch_requests == n - 1
        res = ask(exp, split, store, options=llm_options(tmp_path))
        uploads = [p for m, p in srv.http_log if p.endswith("/files") and m == "POST"]
        assert len(uploads) == 1 and len(srv.batches) == 1
        lines = srv.files["file-1"]["data"].decode().splitlines()
        assert len(lines) == n - 1  # the first image went alone (it teaches the endpoint's quirks)
        line = json.loads(lines[0])
        assert line["url"] == "/v1/chat/completions" and line["body"]["max_completion_tokens"] == 1024
        assert "max_tokens" not in line["body"]  # the probe's adaptation is in every line
        n_fear = int((split.test.labels == split.classes.index("fear")).sum())
        m = res.metrics["sample"]
        assert m.n == n and m.errors == n_fear and res.status == "failed"
        assert res.batch.failed_lines == n_fear and res.batch.status == "completed"
        p = read_predictions(tmp_path / "r/s.llm.m/predictions.csv")
        assert sum("batch line HTTP 500" in e for e in p["error"]) == n_fear
        # batch lines at half price; the probe at full price
        per = (100 * 1.25 + 302 * 10.0) / 1e6
        assert res.usage.cost_this_run_usd == pytest.approx(per * (1 + 0.5 * (n - 1 - n_fear)))
        assert 0.03 < m.min_detectable_difference < 0.2
        # the next run sends only the failed images, in a new batch
        broken["on"] = False
        res = ask(exp, split, store, options=llm_options(tmp_path))
        assert len(srv.batches) == 2 and len(srv.files["file-4"]["data"].decode().splitlines()) == n_fear - 1
        assert res.status == "ok" and res.metrics["sample"].accuracy == 1.0
        assert res.usage.resumed_answers == n - n_fear


def test_a_run_killed_while_the_batch_is_pending_resumes_it(tmp_path, env):
    split, truth = env
    store = RunStore(tmp_path / "r")
    with FakeOpenAI(correct(truth)) as srv:
        exp = llm_experiment(model="gpt-5-mini", base_url=srv.base_url, batch=True, batch_wait=0, **PRICES)
        res = ask(exp, split, store, options=llm_options(tmp_path, max_cost=1.0))
        assert res.status == "pending" and "re-run to collect" in res.reason
        bid = res.batch.batch_id
        state = json.loads((tmp_path / "r/s.llm.m/llm_batch.json").read_text())
        assert state["batch_id"] == bid and state["open"] and len(state["ids"]) == 20
        spend = json.loads((tmp_path / "r/s.llm.m/llm_spend.json").read_text())
        assert state["reserved_usd"] > 0 and spend["pending_usd"] == pytest.approx(state["reserved_usd"])
        # "killed": a new process, new options; meanwhile the batch finished
        srv.finish_batches()
        before = len(srv.http_log)
        res = ask(exp, split, store, options=llm_options(tmp_path, max_cost=1.0))
        new = srv.http_log[before:]
        assert not [p for m, p in new if m == "POST"]  # nothing uploaded or sent again
        assert res.status == "ok" and res.metrics["sample"].accuracy == 1.0
        assert res.batch.batch_id == bid and res.usage.via_batch == 20
        spend = json.loads((tmp_path / "r/s.llm.m/llm_spend.json").read_text())
        assert spend["pending_usd"] == 0 and spend["usd"] == pytest.approx(res.usage.spent_usd_all_runs)
        assert [p for _, p in new] == ["/v1/batches/batch_1", "/v1/files/file-2/content"]
        # the third run: complete, nothing sent or polled
        res = ask(exp, split, store, options=llm_options(tmp_path))
        assert len(srv.http_log) == before + 2 and res.usage.resumed_answers == 21


def test_a_batch_is_found_again_when_the_kill_came_before_its_id_was_recorded(tmp_path, env):
    split, truth = env
    store = RunStore(tmp_path / "r")
    with FakeOpenAI(correct(truth)) as srv:
        exp = llm_experiment(model="m", base_url=srv.base_url, batch=True, batch_wait=0, per_class=1)
        ask(exp, split, store, options=llm_options(tmp_path))
        state = json.loads((tmp_path / "r/s.llm.m/llm_batch.json").read_text())
        del state["batch_id"]  # as if killed between creating the batch and recording it
        store.write_state("s.llm.m", "llm_batch", state)
        srv.finish_batches()
        res = ask(exp, split, store, options=llm_options(tmp_path))
        assert len(srv.batches) == 1 and res.metrics["sample"].accuracy == 1.0


def test_batch_under_max_cost_sends_what_the_cap_allows(tmp_path, env):
    split, truth = env
    with FakeOpenAI(correct(truth), batch_polls=1) as srv:
        exp = llm_experiment(model="m", base_url=srv.base_url, batch=True, batch_wait=30,
                             price_input_per_1m=10_000.0, price_output_per_1m=0.0)
        # $1 for the probe; a batch line reserves $0.50: $4 buys the probe and six lines
        res = ask(exp, split, RunStore(tmp_path / "r"), options=llm_options(tmp_path, max_cost=4.0))
        assert len(srv.files["file-1"]["data"].decode().splitlines()) == 6
    m = res.metrics["sample"]
    assert m.answered == 7 and m.not_sent == 14 and "max-cost" in res.error
    assert res.usage.spent_usd_all_runs == pytest.approx(4.0)


def test_batch_expired_keeps_what_was_answered(tmp_path, env):
    split, truth = env
    with FakeOpenAI(correct(truth)) as srv:
        exp = llm_experiment(model="m", base_url=srv.base_url, batch=True, batch_wait=0, per_class=2)
        store = RunStore(tmp_path / "r")
        ask(exp, split, store, options=llm_options(tmp_path))
        srv.finish_batches("expired")  # half the lines answered
        res = ask(exp, split, store, options=llm_options(tmp_path))
    m = res.metrics["sample"]
    assert m.answered == 1 + 6 and m.errors == 7 and "status expired" in res.error + str(
        read_predictions(tmp_path / "r/s.llm.m/predictions.csv")["error"].tolist())
    assert np.array_equal(np.array(m.confusion).sum(1), [2] * 7)


def test_both_evaluation_partitions_estimate(env):
    split, _ = env
    exp = llm_experiment(model="gpt-5.1", per_class=None, batch=True, reasoning_effort="low", **PRICES)
    exp.llm.sample.split = "PublicTest+PrivateTest"
    est = estimate_llm_experiment(exp, split)
    n = len(split.val.ids) + len(split.test.ids)
    assert est.requests == n and est.completion_tokens_per_request == 8 + 256
    pt = est.prompt_tokens_per_request
    one = (pt * 1.25 + 264 * 10.0) / 1e6
    assert est.estimated_cost_usd == pytest.approx(one + 0.5 * one * (n - 1))


def test_refresh_abandons_a_pending_batch_and_asks_again(tmp_path, env):
    split, truth = env
    store = RunStore(tmp_path / "r")
    with FakeOpenAI(correct(truth)) as srv:
        exp = llm_experiment(model="m", base_url=srv.base_url, batch=True, batch_wait=0, per_class=1)
        assert ask(exp, split, store, options=llm_options(tmp_path)).status == "pending"
        res = ask(exp, split, store, options=llm_options(tmp_path, refresh=True))
        assert srv.batches["batch_1"]["status"] == "cancelled" and len(srv.batches) == 2
        assert res.status == "pending" and res.batch.batch_id == "batch_2"


def test_a_tampered_journal_is_checked(tmp_path, env):
    split, truth = env
    store = RunStore(tmp_path / "r")
    with FakeOpenAI(correct(truth)) as srv:
        exp = llm_experiment(model="m", base_url=srv.base_url, per_class=1)
        ask(exp, split, store, options=llm_options(tmp_path, no_cache=True))
        path = tmp_path / "r/s.llm.m/answers.jsonl"
        lines = path.read_text().splitlines()
        rec = json.loads(lines[1])
        rec.update(prompt_tokens="lots", text=["not", "text"])
        rec2 = json.loads(lines[2])
        rec2.update(completion_tokens=10**12, status="ok", text="happy \ud800")
        path.write_text("\n".join([lines[0], json.dumps(rec), json.dumps(rec2), *lines[3:]]) + "\n")
        res = ask(exp, split, store, options=llm_options(tmp_path, no_cache=True))
        assert len(srv.requests) == 7 + 1  # the unusable record is asked again
        assert res.usage.resumed_answers == 6 and res.usage.completion_tokens < 10**6


def test_batch_through_the_responses_api(tmp_path, env):
    split, truth = env
    with FakeOpenAI(correct(truth), batch_polls=1) as srv:
        exp = llm_experiment(model="gpt-5-nano", base_url=srv.base_url, api="responses", batch=True, batch_wait=30,
                             per_class=1, temperature=None, reasoning_effort="minimal")
        res = ask(exp, split, RunStore(tmp_path / "r"), options=llm_options(tmp_path))
        line = json.loads(srv.files["file-1"]["data"].decode().splitlines()[0])
    assert line["url"] == "/v1/responses" and line["body"]["reasoning"] == {"effort": "minimal"}
    assert res.metrics["sample"].accuracy == 1.0 and res.usage.via_batch == 6
