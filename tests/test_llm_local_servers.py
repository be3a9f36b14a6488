"""Open models on local servers (vLLM, Ollama, llama.cpp's llama-server, LM Studio), each run end to end
against its emulation in tests/fake_openai.py: what was sent, what each server was not sent and why, its
key, its model names, the one-line failures before any image is sent, and time recorded instead of money."""
import socket

import openai
import pytest
from fake_openai import FakeOpenAI, Reply, ask, correct, llm_experiment, llm_options
from pydantic import ValidationError

from ferbench.llm.cost import check_max_cost
from ferbench.llm.providers import list_providers, provider
from ferbench.llm.providers.local import vllm_choice
from ferbench.llm.serving import base_url, endpoint_key
from ferbench.report.llm import _local_cost
from ferbench.report.vlm import _cost
from ferbench.schema.llm import EndpointConfig
from ferbench.store import RunStore

QWEN = "Qwen/Qwen2.5-VL-7B-Instruct"


def _run(tmp_path, srv, **endpoint):
    exp = llm_experiment(base_url=srv.base_url, per_class=1, **endpoint)
    return ask(exp, *_split_store(tmp_path), options=llm_options(tmp_path))


def _split_store(tmp_path):
    from fake_openai import synthetic_split

    return synthetic_split(), RunStore(tmp_path / "r")


def _image_parts(body):
    return [c for c in body["messages"][0]["content"] if c["type"] == "image_url"]


def test_vllm_end_to_end_sends_no_detail_and_records_gpu_seconds(tmp_path, env, monkeypatch):
    split, truth = env
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-openai-key-never-sent")
    with FakeOpenAI(correct(truth), profile="vllm", served=[QWEN]) as srv:
        exp = llm_experiment(model=QWEN, provider="vllm", base_url=srv.base_url, per_class=1,
                             api_key_env="VLLM_API_KEY", gpu="H100 80GB", gpu_count=2)
        res = ask(exp, split, RunStore(tmp_path / "r"), options=llm_options(tmp_path))
        reqs, seen, log = list(srv.requests), list(srv.seen), list(srv.http_log)
    assert res.status == "ok" and res.metrics["sample"].accuracy == 1.0, res.error
    assert log[0] == ("GET", "/v1/models") and len(reqs) == 7  # checked once, then one request per image
    assert {q["auth"] for q in reqs} == {"Bearer EMPTY"}  # the placeholder, never $OPENAI_API_KEY
    body = reqs[0]["body"]
    assert body["max_tokens"] == 1024 and body["temperature"] == 0 and body["model"] == QWEN
    assert all("detail" not in p["image_url"] and p["image_url"]["url"].startswith("data:image/png;base64,")
               for q in reqs for p in _image_parts(q["body"]))
    assert all(s["budget"] == 1024 and s["ignored"] == [] for s in seen)  # nothing sent that vLLM ignores
    assert res.server.provider == "vllm" and res.server.models == [QWEN]
    assert list(res.server.not_sent) == ["detail"] and "not supported" in res.server.not_sent["detail"]
    assert not any("detail" in d for d in res.deviations)
    assert res.usage.estimated_cost_usd is None and res.estimate.estimated_cost_usd is None
    t = res.throughput
    assert t.images == 7 and t.gpu == "H100 80GB" and t.query_seconds > 0
    assert t.gpu_seconds_per_1000 == pytest.approx(1000 * t.query_seconds * 2 / 7)
    assert _cost(res, 7) == f"{t.gpu_seconds_per_1000:.1f} GPU-s on 2 x H100 80GB"
    assert _local_cost(res) == f"$0 (local: 7 images in {t.query_seconds:.1f} s)"  # the usage table's cost cell


def test_vllm_structured_choice_is_the_extra_body_it_documents(env):
    with FakeOpenAI(lambda n, sha, body: Reply("It looks rather sad to me"), profile="vllm") as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="EMPTY", max_retries=0)
        out = client.chat.completions.create(
            model="local-model", max_tokens=8, extra_body=vllm_choice(["happy", "sad"]),
            messages=[{"role": "user", "content": [{"type": "text", "text": "?"}, {
                "type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}])
        sent = srv.requests[0]["body"]
    assert sent["structured_outputs"] == {"choice": ["happy", "sad"]} and "guided_choice" not in sent
    assert out.choices[0].message.content == "sad"


def test_ollama_reads_max_tokens_only_and_a_bare_name_is_its_latest_tag(tmp_path, env):
    split, truth = env
    with FakeOpenAI(correct(truth), profile="ollama", served=["qwen2.5vl:latest"]) as srv:
        res = _run(tmp_path, srv, model="qwen2.5vl", provider="ollama", reasoning_effort="low")
        seen = list(srv.seen)
    assert res.status == "ok" and res.metrics["sample"].accuracy == 1.0, res.error
    assert all(s["budget"] == 1024 and s["reasoning_effort"] == "low" and not s["detail_sent"] for s in seen)
    assert res.request.model_dump() == {"model": "qwen2.5vl", "max_tokens": 1024, "temperature": 0.0,
                                        "reasoning_effort": "low"}
    with pytest.raises(ValidationError, match="reads the budget from max_tokens only"):
        EndpointConfig(model="qwen2.5vl", provider="ollama", token_param="max_completion_tokens")


def test_ollama_refusing_a_reasoning_effort_is_each_image_s_error_with_its_words(tmp_path, env, monkeypatch):
    import fake_openai

    split, truth = env
    monkeypatch.setattr(fake_openai, "OLLAMA_EFFORTS", ("high", "medium", "low", "max", "none"))  # as its docs list
    with FakeOpenAI(correct(truth), profile="ollama") as srv:
        res = _run(tmp_path, srv, model="local-model", provider="ollama", reasoning_effort="minimal")
    assert res.status == "failed" and "7 of 7 image(s) got no answer" in res.error
    assert res.throughput.images == 7  # the refused requests took time too
    csv = (RunStore(tmp_path / "r").exp_dir(res.id) / "predictions.csv").read_text()
    assert csv.count("invalid reasoning value") == 7 and res.adaptations == []


def test_llamacpp_serves_one_model_under_any_name_and_refuses_a_text_only_model(tmp_path, env):
    split, truth = env
    gguf = "/models/Qwen2.5-VL-7B-Instruct-Q4_K_M.gguf"
    with FakeOpenAI(correct(truth), profile="llamacpp", served=[gguf]) as srv:
        res = _run(tmp_path, srv, model="qwen-vl", provider="llamacpp")
        seen = list(srv.seen)
    assert res.status == "ok" and res.metrics["sample"].accuracy == 1.0, res.error
    assert res.server.models == [gguf] and all(not s["detail_sent"] for s in seen)
    with FakeOpenAI(correct(truth), profile="llamacpp", served=[gguf], vision=False) as srv:
        res = _run(tmp_path / "2", srv, model="qwen-vl", provider="llamacpp")
        sent = list(srv.requests)
    assert res.status == "failed" and sent == []
    assert "takes no images" in res.error and "--mmproj" in res.error and "\n" not in res.error


def test_lmstudio_model_ids_are_checked_before_any_image_and_reasoning_effort_is_not_sent(tmp_path, env):
    split, truth = env
    with FakeOpenAI(correct(truth), profile="lmstudio", served=["qwen2.5-vl-7b-instruct"]) as srv:
        wrong = _run(tmp_path, srv, model=QWEN, provider="lmstudio")
        assert srv.requests == []
        res = _run(tmp_path / "2", srv, model="qwen2.5-vl-7b-instruct", provider="lmstudio",
                   reasoning_effort="low")
        seen = list(srv.seen)
    assert wrong.status == "failed" and "does not serve model 'Qwen/Qwen2.5-VL-7B-Instruct'" in wrong.error
    assert "it serves: qwen2.5-vl-7b-instruct" in wrong.error
    assert res.status == "ok" and res.metrics["sample"].accuracy == 1.0, res.error
    assert all(s["reasoning_effort"] is None and s["ignored"] == [] for s in seen)
    assert set(res.server.not_sent) == {"detail", "reasoning_effort"}
    assert any(d.startswith("reasoning_effort not sent: not among LM Studio") for d in res.deviations)
    assert _cost(res, 7).endswith("s wall (local, GPU not stated)")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_server_that_is_down_or_locked_fails_in_one_line_before_any_image(tmp_path, env, monkeypatch):
    split, truth = env
    exp = llm_experiment(model=QWEN, provider="vllm", base_url=f"http://127.0.0.1:{_closed_port()}/v1", per_class=1)
    res = ask(exp, split, RunStore(tmp_path / "r"), options=llm_options(tmp_path))
    assert res.status == "failed" and "nothing answers at http://127.0.0.1:" in res.error
    assert "start the vLLM server" in res.error and "\n" not in res.error and "Traceback" not in res.error
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    with FakeOpenAI(correct(truth), profile="vllm", api_key="s3cret") as srv:
        locked = _run(tmp_path / "2", srv, model="local-model", provider="vllm", api_key_env="VLLM_API_KEY")
        monkeypatch.setenv("VLLM_API_KEY", "s3cret")
        opened = _run(tmp_path / "3", srv, model="local-model", provider="vllm", api_key_env="VLLM_API_KEY")
    assert locked.status == "failed" and "refused the key: set $VLLM_API_KEY" in locked.error
    assert opened.status == "ok" and "s3cret" not in opened.model_dump_json()


def test_each_server_as_documented_defaults_keys_and_refusals(monkeypatch):
    for v in ("VLLM_BASE_URL", "OLLAMA_BASE_URL", "LLAMA_CPP_BASE_URL", "LMSTUDIO_BASE_URL", "VLLM_API_KEY"):
        monkeypatch.delenv(v, raising=False)
    assert {"vllm", "ollama", "llamacpp", "lmstudio"} <= set(list_providers())
    urls = {n: base_url(EndpointConfig(model="m", provider=n)) for n in ("vllm", "ollama", "llamacpp", "lmstudio")}
    assert urls == {"vllm": "http://localhost:8000/v1", "ollama": "http://localhost:11434/v1",
                    "llamacpp": "http://127.0.0.1:9931/v1", "lmstudio": "http://localhost:1234/v1"}
    monkeypatch.setenv("OLLAMA_BASE_URL", "http://gpu-box:11434/v1")
    assert base_url(EndpointConfig(model="m", provider="ollama")) == "http://gpu-box:11434/v1"
    ep = EndpointConfig(model="m", provider="vllm")
    assert ep.api_key_env == "VLLM_API_KEY" and endpoint_key(ep, {"OPENAI_API_KEY": "sk-x"}) == "EMPTY"
    assert endpoint_key(EndpointConfig(model="m"), {}) is None  # a hosted API still needs its key
    for n in ("vllm", "ollama", "llamacpp", "lmstudio"):
        assert provider(n).local and provider(n).docs and "detail" in provider(n).not_sent
    with pytest.raises(ValidationError, match="no token prices"):
        EndpointConfig(model="m", provider="vllm", price_input_per_1m=0.1, price_output_per_1m=0.1)
    with pytest.raises(ValidationError, match="api: chat"):
        EndpointConfig(model="m", provider="lmstudio", api="responses")
    with pytest.raises(ValidationError, match="gpu is for local servers"):
        EndpointConfig(model="gpt-5", gpu="H100")
    exp = llm_experiment(model="m", provider="ollama")
    check_max_cost([exp], 1.0)  # a local server spends nothing: within any cap


def test_validate_says_where_a_local_endpoint_is_and_what_it_lacks(monkeypatch):
    from pathlib import Path

    from click.testing import CliRunner

    from ferbench.cli import main

    for v in ("VLLM_BASE_URL", "VLLM_API_KEY"):
        monkeypatch.delenv(v, raising=False)
    suite = Path(__file__).resolve().parents[1] / "suites" / "vlm_local.yaml"
    r = CliRunner().invoke(main, ["validate", str(suite)])
    assert r.exit_code == 0, r.output
    line = next(ln for ln in r.output.splitlines() if "Qwen2.5-VL-7B (vLLM)" in ln)
    assert "vLLM at http://localhost:8000/v1 (the server's default" in line and "not sent: detail" in line
    assert "no key ($VLLM_API_KEY unset" in line and "GPU-seconds on H100 80GB" in line


@pytest.mark.slow
def test_the_walkthrough_suite_runs_against_an_emulated_vllm_on_a_rafdb_fixture(tmp_path, monkeypatch):
    """suites/vlm_local.yaml as shipped (its manifest, input, networks and endpoint), pointed at the emulated
    vLLM and a 161-image RAF-DB fixture, one epoch: every model on the manifest's items, GPU-s in the report."""
    from pathlib import Path

    import yaml
    from click.testing import CliRunner
    from dataset_layouts import write_rafdb

    from ferbench.cli import main

    root = Path(__file__).resolve().parents[1] / "suites"
    codes = [1 + k % 7 for k in range(21)]
    raf = write_rafdb(tmp_path / "raf", [(f"train_{k:05d}.jpg", 1 + k % 7) for k in range(1, 141)]
                      + [(f"test_{k + 1:04d}.jpg", c) for k, c in enumerate(codes)])
    suite = yaml.safe_load((root / "vlm_local.yaml").read_text())
    study = suite["studies"][0]
    study["split"]["manifest"] = str(root / study["split"]["manifest"])
    with FakeOpenAI(lambda n, sha, body: Reply("happy"), profile="vllm",
                    served=[study["llm"]["endpoints"][0]["model"]]) as srv:
        study["llm"]["endpoints"][0]["base_url"] = srv.base_url
        (tmp_path / "s.yaml").write_text(yaml.safe_dump(suite))
        r = CliRunner().invoke(main, ["run", str(tmp_path / "s.yaml"), "--data", str(raf), "--epochs", "1",
                                      "--results-dir", str(tmp_path / "res"), "--no-cache"], catch_exceptions=False)
        sent = len(srv.requests)
    assert r.exit_code == 0, r.output
    assert sent == 21  # the 21 manifest items the fixture holds, each asked once
    md = (tmp_path / "res/vlm_local-epochs1/report.md").read_text()  # --epochs gets its own run folder
    assert "21 of its 3,068 images found in RAF-DB" in md
    table = md.split("### Vision-language models beside the best network")[1].split("###")[0]
    row = next(ln for ln in table.splitlines() if ln.startswith("| Qwen2.5-VL-7B (vLLM) (LLM)"))
    assert "GPU-s on H100 80GB" in row and row.split("|")[3].strip() == "21"
    nets = [ln for ln in table.splitlines() if ln.startswith("| timm-")]
    assert len(nets) == 1 and "(best network)" in nets[0]  # the better of the two networks, on the same items
