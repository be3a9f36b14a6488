"""The runner's part of the LLM issues: --max-cost checked before training and spanning endpoints and runs, --refresh-llm."""
import json

from click.testing import CliRunner

from ferbench.cli import main

from fake_openai import FakeOpenAI, Reply

SECRET = "sk-test-" + "R" * 30


def _suite(tmp_path, endpoints, **llm):
    llm_yaml = json.dumps({"endpoints": endpoints, "sample": {"per_class": 1}, **llm})
    p = tmp_path / "s.yaml"
    p.write_text(f"""name: r
data: synthetic:700:5
defaults: {{epochs: 1}}
studies:
  - name: s
    split: {{kind: official, train_per_class: 10}}
    experiments: [{{model: basic_cnn}}]
    llm: {llm_yaml}
""")
    return p


def _run(suite, tmp_path, *extra):
    return CliRunner().invoke(main, ["run", str(suite), "--results-dir", str(tmp_path / "res"), *extra])


def test_unpriced_max_cost_fails_before_training(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", SECRET)
    r = _run(_suite(tmp_path, [{"model": "m", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "FAKE_KEY"}]),
             tmp_path, "--max-cost", "1")
    assert r.exit_code != 0 and "without prices: m" in r.output
    assert not (tmp_path / "res/r/s.basic_cnn/result.json").exists()


def test_refresh_llm_asks_a_complete_experiment_again_and_the_cap_spans_endpoints(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", SECRET)
    with FakeOpenAI(lambda n, sha, body: Reply("happy")) as srv:
        eps = [{"model": m, "base_url": srv.base_url, "api_key_env": "FAKE_KEY", "price_input_per_1m": 10_000.0,
                "price_output_per_1m": 0.0} for m in ("a", "b")]
        suite = _suite(tmp_path, eps)
        r = _run(suite, tmp_path, "--max-cost", "9", "--no-cache")  # $1 a request: 9 of the 14
        assert len(srv.requests) == 9, r.output
        r = _run(suite, tmp_path, "--max-cost", "14", "--no-cache")
        assert len(srv.requests) == 14 and r.exit_code == 0, r.output
        r = _run(suite, tmp_path, "--refresh-llm", "--no-cache")
        assert len(srv.requests) == 28 and r.exit_code == 0, r.output


def test_dry_run_trains_nothing_and_shows_the_llm_plan(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_KEY", SECRET)
    ep = {"model": "m", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "FAKE_KEY",
          "price_input_per_1m": 2.0, "price_output_per_1m": 8.0}
    suite = _suite(tmp_path, [ep])
    r = CliRunner().invoke(main, ["run", str(suite), "--results-dir", str(tmp_path / "res"), "--dry-run", "--json"])
    assert r.exit_code == 0, r.output
    plan = {p["id"]: p for p in json.loads(r.stdout)["plan"]}
    assert plan["s.basic_cnn"]["action"] == "run" and plan["s.llm.m"]["action"] == "run"
    est = plan["s.llm.m"]["estimate"]
    assert est["requests"] == 7 and est["estimated_cost_usd"] > 0 and est["prompt"].startswith("From the image")
    assert not (tmp_path / "res/r/s.basic_cnn").exists()  # nothing trained, nothing written
    text = CliRunner().invoke(main, ["run", str(suite), "--results-dir", str(tmp_path / "res"), "--dry-run"]).output
    assert "7 requests" in text and "prompt: From the image provided" in text and "nothing was trained or sent" in text
