"""MTCNN face re-detection (the augmented study's Data Cleaning): the cached detections, the crop, the
profile switch and the loud failure without facenet-pytorch. The real detector runs only where
facenet-pytorch is installed (``pip install --no-deps facenet-pytorch``)."""
import textwrap

import numpy as np
import pytest

from ferbench.data import faces, load_data
from ferbench.errors import FerbenchError
from ferbench.runner import RunRequest, run_suite
from ferbench.suite import expand, load_suite

SUITE = """\
name: f
data: synthetic:140:1
studies:
  - name: a
    split: {kind: augmented, copies: 1, order: split_then_augment, face_detect: mtcnn}
    experiments: [{model: mlp}]
"""


def _fake(n: int, found: np.ndarray) -> faces.Detections:
    boxes = np.where(found[:, None], np.array([[4, 6, 40, 44]], np.float32), np.nan).astype(np.float32)
    return faces.Detections(boxes, np.where(found, 0.99, np.nan).astype(np.float32))


@pytest.fixture
def fake_detector(monkeypatch):
    """MTCNN replaced by a counter that 'finds' a face in every other image (no facenet-pytorch needed)."""
    calls = []

    def run(images, s, progress=None):
        calls.append(len(images))
        return _fake(len(images), np.arange(len(images)) % 2 == 0)

    monkeypatch.setattr(faces, "require", lambda: None)
    monkeypatch.setattr(faces, "_version", lambda: "test")
    monkeypatch.setattr(faces, "run_mtcnn", run)
    return calls


def test_detections_are_cached_keyed_by_the_images_and_checked(fake_detector):
    data = load_data("synthetic:70:1")
    det, cached = faces.detect_faces(data.images)
    assert not cached and fake_detector == [len(data)] and det.kept.sum() == (len(data) + 1) // 2
    again, cached = faces.detect_faces(data.images)
    assert cached and fake_detector == [len(data)] and np.array_equal(again.kept, det.kept)
    # other images: another key, detected again
    faces.detect_faces(data.images[:10])
    assert fake_detector == [len(data), 10]
    # a tampered cache is not trusted: detected again and rewritten
    p = faces.cache_dir() / f"faces-{faces.detections_key(data.images, faces.MTCNNSettings())}"
    probs = np.load(p / "probs.npy")
    np.save(p / "probs.npy", np.zeros_like(probs))
    det3, cached = faces.detect_faces(data.images)
    assert not cached and np.array_equal(det3.kept, det.kept)
    # other settings: another key
    assert faces.detections_key(data.images, faces.MTCNNSettings(min_face_size=12)) != p.name[6:]


def test_images_without_a_face_are_dropped_and_the_rest_cropped_to_it():
    data = load_data("synthetic:70:1")
    found = np.arange(len(data)) % 3 != 0
    out = faces.apply_faces(data, _fake(len(data), found))
    assert len(out) == found.sum() and out.images.shape[1:] == (48, 48)
    assert list(out.ids) == list(data.ids[found])
    i = int(np.flatnonzero(found)[0])
    from PIL import Image

    want = np.asarray(Image.fromarray(data.images[i][6:44, 4:40]).resize((48, 48), Image.BILINEAR))
    assert np.array_equal(out.images[0], want)
    # a box reaching outside the image is clamped to it
    assert faces.crop_resize(data.images[i], np.array([-5, -5, 60, 60], np.float32)).shape == (48, 48)
    assert "kept 1,234 of 35,887 images (the paper kept 30,159)" in faces.kept_note(1234, 35887)


def test_the_split_note_gives_the_kept_count_and_profiles_without_detection_say_so(tmp_path, fake_detector):
    p = tmp_path / "s.yaml"
    p.write_text(textwrap.dedent(SUITE))
    s = load_suite(p)
    paper, quick = expand(s, "paper")[0], expand(s, "quick")[0]
    assert paper.split.face_detect == "mtcnn" and quick.split.face_detect == "none"
    assert any("no MTCNN face re-detection (profile)" in d for d in quick.deviations)
    assert paper.config_hash() != quick.model_copy(update={"deviations": paper.deviations}).config_hash()
    from ferbench.executors.context import SplitCache

    data = load_data("synthetic:140:1")
    split = SplitCache(data).get(paper)
    assert split.notes[0].startswith(f"MTCNN face re-detection kept {(len(data) + 1) // 2:,} of {len(data):,}")
    assert sum(split.sizes().values()) == (len(data) + 1) // 2


def test_a_suite_asking_for_mtcnn_fails_before_training_when_it_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(faces, "available", lambda: False)
    p = tmp_path / "s.yaml"
    p.write_text(textwrap.dedent(SUITE))
    with pytest.raises(FerbenchError, match="facenet-pytorch is not installed: pip install --no-deps"):
        run_suite(p, RunRequest(results_dir=tmp_path / "r", report=False))
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(not faces.available(),
                    reason="facenet-pytorch not installed (pip install --no-deps facenet-pytorch)")
def test_real_mtcnn_runs_with_this_torch_and_returns_one_box_or_none_per_image():
    data = load_data("synthetic:70:1")
    det = faces.run_mtcnn(data.images[:6], faces.MTCNNSettings())
    assert det.boxes.shape == (6, 4) and det.probs.shape == (6,)
    assert np.array_equal(np.isnan(det.boxes).any(axis=1), ~det.kept)
