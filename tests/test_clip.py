"""``kind: clip``: a tiny random open_clip model built from a config (no weights are downloaded), scored
zero-shot and by a linear probe in the same tables as every model."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from pydantic import ValidationError

from ferbench.cli import main
from ferbench.schema.clip import CLIPModelConfig

open_clip = pytest.importorskip("open_clip")

DATA = "synthetic:420:4"
TINY = {"embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
        "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


def tiny_clip(folder: Path, seed: int = 0) -> Path:
    """open_clip_config.json and random weights, as a local folder release is laid out."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = open_clip.CLIP(**TINY)
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY, "preprocess_cfg": {}}))
    return folder


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clip")
    tiny_clip(tmp / "tiny")
    (tmp / "s.yaml").write_text(
        f"name: s\ndata: {DATA}\nstudies:\n  - name: st\n    split: {{kind: official, eval_per_class: 8, "
        "train_per_class: 12}\n    experiments:\n"
        "      - {model: {clip: tiny, templates: ['a photo of a {c} face.']}, label: zs}\n"
        "      - {model: {clip: tiny, mode: linear_probe, C: [0.01, 1, 100]}, label: probe}\n"
        "      - {model: {clip: missing_folder}, label: gone}\n")
    r = CliRunner().invoke(main, ["run", str(tmp / "s.yaml"), "--results-dir", str(tmp / "res")])
    return tmp, r


def _result(tmp: Path, label: str) -> dict:
    return json.loads((tmp / f"res/s/st.{label}/result.json").read_text())


def test_zero_shot_predicts_the_nearest_class_prompt(clip_run):
    tmp, _ = clip_run
    res = _result(tmp, "zs")
    assert res["status"] == "ok" and res["kind"] == "clip" and res["clip"]["mode"] == "zero_shot"
    assert res["clip"]["classnames"]["fear"] == "fearful"  # clip_benchmark's class names by default
    rows = [r for r in csv.DictReader(open(tmp / "res/s/st.zs/predictions.csv")) if r["split"] == "test"]
    # independently: open_clip's own calls, one prompt per class, cosine similarity
    model, _, pre = open_clip.create_model_and_transforms(f"local-dir:{tmp / 'tiny'}")
    tok = open_clip.get_tokenizer(f"local-dir:{tmp / 'tiny'}")
    words = [res["clip"]["classnames"][c] for c in res["split"]["classes"]]
    from ferbench.data import load_data
    from ferbench.data.splits import make_split

    test = make_split(load_data(DATA), "official", eval_per_class=8, train_per_class=12).test
    with torch.no_grad():
        t = torch.nn.functional.normalize(model.encode_text(tok([f"a photo of a {w} face." for w in words])), dim=-1)
        from PIL import Image
        x = torch.stack([pre(Image.fromarray(a, "L").convert("RGB")) for a in test.images])
        i = torch.nn.functional.normalize(model.encode_image(x), dim=-1)
    want = dict(zip(test.ids, (i @ t.T).argmax(1).tolist()))
    assert len(rows) == len(test) and all(int(r["predicted"]) == want[r["id"]] for r in rows)
    assert res["metrics"]["test"]["accuracy"] == pytest.approx(np.mean([want[i] == y for i, y in zip(test.ids, test.labels)]))


def test_linear_probe_chooses_c_on_validation(clip_run):
    tmp, _ = clip_run
    res = _result(tmp, "probe")
    by_c = res["clip"]["val_accuracy_by_C"]
    assert set(by_c) == {"0.01", "1", "100"}
    best = max(by_c.values())
    assert res["clip"]["C"] == float(next(c for c, v in by_c.items() if v == best))
    assert res["metrics"]["val"]["accuracy"] == pytest.approx(best)  # val scored by the chosen probe


def test_clip_rows_are_in_the_accuracy_table_and_missing_weights_fail_loudly(clip_run):
    tmp, r = clip_run
    gone = _result(tmp, "gone")
    assert gone["status"] == "failed" and "do not exist (a local file or folder; nothing is downloaded)" in gone["error"]
    acc = (tmp / "res/s/report.md").read_text().split("### Test accuracy")[1].split("###")[0]
    assert "| zs " in acc and "| probe " in acc
    listed = CliRunner().invoke(main, ["list", str(tmp / "s.yaml"), "--results-dir", str(tmp / "res")])
    assert listed.exit_code == 0 and "st.zs" in listed.output, listed.output
    # a complete result is reused, not recomputed
    again = CliRunner().invoke(main, ["run", str(tmp / "s.yaml"), "--results-dir", str(tmp / "res")])
    assert "2 reused" in again.output, again.output


def test_a_folder_must_hold_one_weights_file(tmp_path):
    from ferbench.clip.model import load_clip
    from ferbench.errors import DataError

    folder = tiny_clip(tmp_path / "two")
    (folder / "open_clip_model.safetensors").write_bytes(b"")
    with pytest.raises(DataError, match="exactly one weights file .* it holds 2"):
        load_clip(CLIPModelConfig(clip=str(folder)), torch.device("cpu"))
    (folder / "open_clip_model.safetensors").unlink()
    (folder / "open_clip_pytorch_model.bin").unlink()
    with pytest.raises(DataError, match="it holds 0. ferbench never downloads weights"):
        load_clip(CLIPModelConfig(clip=str(folder)), torch.device("cpu"))


def test_clip_config_refuses_hub_names_and_templates_without_a_slot():
    with pytest.raises(ValidationError, match="hub names are not accepted"):
        CLIPModelConfig(clip="w.bin", arch="hf-hub:laion/CLIP")
    with pytest.raises(ValidationError, match="must hold '\\{c\\}'"):
        CLIPModelConfig(clip="d", templates=["a photo of a face."])
