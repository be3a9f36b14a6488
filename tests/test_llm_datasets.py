"""LLM samples per dataset: drawn from each dataset's own test partition, stratified over its classes;
contempt answers count as contempt where the dataset has it."""
from __future__ import annotations

import numpy as np

from dataset_layouts import write_ferplus, write_rafdb
from ferbench.data import load_data
from ferbench.data.splits import make_split
from ferbench.llm.parse import parse_answer
from ferbench.llm.query import sample_partition
from ferbench.llm.sampler import stratified_sample
from ferbench.vocabulary import CLASSES_7, CLASSES_8


def test_contempt_is_its_own_answer_only_where_the_dataset_has_it():
    assert parse_answer("Contempt.", CLASSES_8) == "contempt"
    assert parse_answer("contemptuous", CLASSES_8) == "contempt"
    assert parse_answer("Contempt.", CLASSES_7) == "disgust"  # FER2013's seven: folded as before
    assert parse_answer("contempt") == "disgust"


def test_sample_is_stratified_over_an_8_class_dataset(tmp_path):
    rows = []
    for u in ("Training", "PublicTest", "PrivateTest"):
        for k in range(24):
            v = [0] * 10
            v[k % 8] = 10
            rows.append((u, f"f{u}{k}.png", v))
    split = make_split(load_data(str(write_ferplus(tmp_path / "fp", rows))), "ferplus")
    part = sample_partition(split, "test")
    idx, notes = stratified_sample(part.labels, part.ids, 2, 0, len(split.classes))
    assert np.bincount(part.labels[idx], minlength=8).tolist() == [2] * 8 and not notes
    assert all(i.startswith("PrivateTest_") for i in part.ids[idx])


def test_rafdb_sample_comes_from_its_test_list(tmp_path):
    rows = [(f"train_{k:05d}.jpg", k % 7 + 1) for k in range(21)] + [(f"test_{k:04d}.jpg", k % 7 + 1) for k in range(14)]
    split = make_split(load_data(str(write_rafdb(tmp_path / "raf", rows))), "rafdb", val_fraction=0.34)
    part = sample_partition(split, "test")
    idx, _ = stratified_sample(part.labels, part.ids, 1, 0, len(split.classes))
    assert len(idx) == 7 and all(i.startswith("test_") for i in part.ids[idx])
