"""Endpoint faults cost one image, never the experiment; the cost cap is hard across concurrency and runs."""
import csv
import time

import pytest
from fake_openai import (
    ask,
    llm_options,
    FakeOpenAI,
    Reply,
    correct,
    llm_experiment,
)

from ferbench.errors import FerbenchError
from ferbench.llm.cost import check_max_cost
from ferbench.store import RunStore, read_predictions


def _faulty(truth, bad_class, **reply):
    return lambda n, sha, body: Reply(**reply) if truth[sha] == bad_class else Reply(truth[sha])


@pytest.mark.parametrize("reply,message", [
    ({"fault": "malformed"}, "answer body is not JSON"),
    ({"fault": "html"}, "answer body is not JSON (starts '<!DOCTYPE html>"),
    ({"fault": "no_choices"}, "answer has no 'choices'"),
    ({"fault": "non_utf8"}, "answer body is not UTF-8"),
    ({"content": ["happy"]}, "answer content is a JSON list, not a string"),
    ({"content": {"emotion": "happy"}}, "answer content is a JSON dict, not a string"),
    ({"text": "happy", "fault": "surrogate"}, "invalid Unicode"),
    ({"fault": "huge"}, "answer body over 1048576 bytes"),
    ({"text": "fear", "fault": "cut"}, "answer cut off after 2 attempts"),
    ({"text": "fear", "fault": "bad_gzip"}, "answer cut off after 2 attempts"),
])
def test_a_bad_body_costs_one_image(tmp_path, env, reply, message):
    split, truth = env
    store = RunStore(tmp_path / "r")
    with FakeOpenAI(_faulty(truth, "fear", **reply)) as srv:
        exp = llm_experiment(model="m", base_url=srv.base_url, per_class=1)
        res = ask(exp, split, store, options=llm_options(tmp_path))
        assert res.status == "failed" and "1 of 7 image(s) got no answer" in res.error
        m = res.metrics["sample"]
        assert m.errors == 1 and m.accuracy == pytest.approx(6 / 7) and m.confusion[2][7] == 1
        p = read_predictions(tmp_path / "r/s.llm.m/predictions.csv")
        assert sum(message in e for e in p["error"]) == 1
        # --refresh-llm asks everything again and the same fault is again one image's error
        res = ask(exp, split, store, options=llm_options(tmp_path, refresh=True))
        retried = 1 if "cut off" in message else 0  # a broken connection is tried again (max_retries=1)
        assert len(srv.requests) == 2 * (7 + retried) and res.metrics["sample"].errors == 1


def test_a_trickling_server_hits_the_total_deadline(tmp_path, env):
    split, truth = env
    with FakeOpenAI(_faulty(truth, "fear", text="fear", fault="trickle"), trickle_delay=0.05) as srv:
        # each byte arrives well within the read timeout; the whole body would take ~15 s
        exp = llm_experiment(model="m", base_url=srv.base_url, per_class=1, timeout=0.5, max_retries=1)
        t0 = time.monotonic()
        res = ask(exp, split, RunStore(tmp_path / "r"), options=llm_options(tmp_path))
        elapsed = time.monotonic() - t0
    assert elapsed < 5, elapsed
    p = read_predictions(tmp_path / "r/s.llm.m/predictions.csv")
    assert list(p["error"]).count("APITimeoutError after 2 attempts") == 1
    assert res.metrics["sample"].errors == 1


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failure_stops_the_endpoint_at_once(tmp_path, env, status):
    split, truth = env

    def script(n, sha, body):
        return Reply(truth[sha]) if n < 5 else Reply(status=status)

    with FakeOpenAI(script) as srv:
        exp = llm_experiment(model="m", base_url=srv.base_url, concurrency=4)
        res = ask(exp, split, RunStore(tmp_path / "r"), options=llm_options(tmp_path))
        n = len(srv.requests)
    assert res.status == "failed" and ("AuthenticationError" if status == 401 else "PermissionDeniedError") in res.error
    assert n <= 5 + 4  # the requests already in flight, not the 21 queued


def test_long_answers_are_capped_and_files_stay_readable(tmp_path, env):
    split, _ = env
    with FakeOpenAI(lambda n, sha, body: Reply("sad " * 100_000)) as srv:  # 400 kB: under the body cap
        exp = llm_experiment(model="m", base_url=srv.base_url, per_class=1)
        res = ask(exp, split, RunStore(tmp_path / "r"), options=llm_options(tmp_path))
    path = tmp_path / "r/s.llm.m/predictions.csv"
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))  # the default 131,072-character field limit holds
    raw = rows[1][4]
    assert len(raw) < 2100 and raw.endswith("more characters]")
    assert res.metrics["sample"].per_class_accuracy[4] == 1.0  # "sad sad ..." still names sad


def test_max_cost_is_a_hard_cap_under_concurrency_and_across_runs(tmp_path, env):
    split, truth = env
    store = RunStore(tmp_path / "r")
    with FakeOpenAI(correct(truth)) as srv:
        # 100 prompt tokens at $10,000 per 1M = $1 a request (output free): $3 buys three requests
        exp = llm_experiment(model="m", base_url=srv.base_url, concurrency=4, price_input_per_1m=10_000.0,
                             price_output_per_1m=0.0)
        res = ask(exp, split, store, options=llm_options(tmp_path, max_cost=3.0, no_cache=True))
        assert len(srv.requests) == 3
        assert res.status == "failed" and "stopped at --max-cost 3.0: 18 image(s) were not sent" in res.error
        assert res.usage.spent_usd_all_runs == pytest.approx(3.0)
        # a re-run under the same cap resumes the 3 answers and sends nothing: the cap was spent
        res = ask(exp, split, store, options=llm_options(tmp_path, max_cost=3.0, no_cache=True))
        assert len(srv.requests) == 3 and res.usage.resumed_answers == 3
        # a larger cap pays only for the difference
        res = ask(exp, split, store, options=llm_options(tmp_path, max_cost=5.0, no_cache=True))
        assert len(srv.requests) == 5 and res.usage.spent_usd_all_runs == pytest.approx(5.0)


def test_one_cap_for_all_llm_experiments_of_a_run(tmp_path, env):
    split, truth = env
    store = RunStore(tmp_path / "r")
    opts = llm_options(tmp_path, max_cost=4.0, no_cache=True)
    with FakeOpenAI(correct(truth)) as srv:
        a, b = (llm_experiment(eid, model="m", base_url=srv.base_url, price_input_per_1m=10_000.0,
                               price_output_per_1m=0.0) for eid in ("s.llm.a", "s.llm.b"))
        ask(a, split, store, options=opts)
        ask(b, split, store, options=opts)
        assert len(srv.requests) == 4


def test_unpriced_endpoint_refuses_max_cost(tmp_path, env):
    split, truth = env
    with FakeOpenAI(correct(truth)) as srv:
        exp = llm_experiment(model="m", base_url=srv.base_url)
        with pytest.raises(FerbenchError, match="without prices: m"):
            check_max_cost([exp], 1.0)
        check_max_cost([exp], None)
        res = ask(exp, split, RunStore(tmp_path / "r"), options=llm_options(tmp_path, max_cost=1.0))
        assert res.status == "failed" and "price_input_per_1m" in res.error and not srv.requests
        free = llm_experiment(model="m", base_url=srv.base_url, price_input_per_1m=0, price_output_per_1m=0)
        check_max_cost([free], 1.0)  # a free local server, said so


def test_refresh_asks_finished_experiments_again(tmp_path, env):
    split, truth = env
    store = RunStore(tmp_path / "r")
    with FakeOpenAI(correct(truth)) as srv:
        exp = llm_experiment(model="m", base_url=srv.base_url)
        ask(exp, split, store, options=llm_options(tmp_path))
        ask(exp, split, store, options=llm_options(tmp_path))
        assert len(srv.requests) == 21
        res = ask(exp, split, store, options=llm_options(tmp_path, refresh=True))
        assert len(srv.requests) == 42 and res.usage.resumed_answers == 0 and res.usage.cache_hits == 0
