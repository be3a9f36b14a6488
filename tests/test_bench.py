import json

from click.testing import CliRunner

from ferbench.cli import main


def test_bench_cli_measures_both_pipelines(kaggle_folder):
    root, _ = kaggle_folder
    r = CliRunner().invoke(main, ["bench", "--models", "basic_cnn,mlp", "--steps", "2", "--batch-size", "16",
                                  "--workers", "0", "--repeats", "1", "--load", str(root), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    rows = {row["model"]: row for row in out["models"]}
    assert set(rows) == {"basic_cnn", "mlp"}
    for row in rows.values():
        for k in ("train_fast_ips", "train_conventional_ips", "infer_fast_ips", "infer_conventional_ips"):
            assert row[k] > 0
        assert abs(row["train_ratio"] - row["train_fast_ips"] / row["train_conventional_ips"]) < 1e-9
    assert out["load"]["images"] == 63 and out["load"]["decode_s"] > 0


def test_bench_feature_cache_and_table(monkeypatch):
    r = CliRunner().invoke(main, ["bench", "--models", "mlp", "--steps", "2", "--workers", "0", "--repeats", "1", "--feature-cache",
                                  "--input-size", "32"])
    assert r.exit_code == 0, r.output
    assert "train img/s (ferbench)" in r.output and "with the feature cache" in r.output


def test_bench_unknown_model():
    r = CliRunner().invoke(main, ["bench", "--models", "basic_cnm"])
    assert r.exit_code == 1 and "Did you mean 'basic_cnn'" in r.output
