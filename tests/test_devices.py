"""Device semantics that CUDA, MPS and Ray GPUs have and this CPU machine can still exercise: RNG states
that must stay CPU tensors, programs moved with .to(), Ray's per-task options, precision choice from the
device capability, compile without a compiler, border sampling without a border mode (issue 24)."""
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ferbench import engine
from ferbench.augment import augment_batch, clamp_to_border
from ferbench.engine import TrainConfig, _Loop, amp_dtype, model_amp_dtype, prepare_model
from ferbench.models import FERModel, create_model
from ferbench.models.adapter import InputSpec
from ferbench.schema.train import AugmentConfig

CUDA = torch.device("cuda")


@pytest.fixture
def fake_cuda(monkeypatch):
    """torch.cuda as a GPU of a chosen compute capability would answer (no GPU here)."""
    cap = {"v": (8, 0)}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: cap["v"])
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # what torch says on a T4 too
    return cap


# --- 1: resume on a GPU -----------------------------------------------------------------------------------

def test_the_gpu_generator_state_is_checkpointed_and_restored(monkeypatch):
    """Dropout on a GPU draws from the device's generator: a resumed run continues its stream."""
    g = torch.Generator().manual_seed(7)
    saved, restored = torch.randint(0, 255, (16,), dtype=torch.uint8, generator=g), []
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": saved.clone())
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda": restored.append(state))
    cfg = TrainConfig(epochs=2)
    loop = _Loop(create_model("mlp"), cfg, CUDA, seed=0, has_val=False, autocast=None)
    buf = io.BytesIO()
    torch.save(loop.state_dict(0), buf)
    buf.seek(0)
    ck = torch.load(buf, map_location="cpu", weights_only=True)
    _Loop(create_model("mlp"), cfg, CUDA, seed=0, has_val=False, autocast=None).resume(ck)
    assert len(restored) == 1 and torch.equal(restored[0], saved) and restored[0].device.type == "cpu"


def test_generators_accept_only_cpu_states_so_checkpoints_load_on_the_cpu():
    """torch's rule the old map_location=device broke: a state on any other device is refused."""
    g = torch.Generator()
    with pytest.raises((RuntimeError, TypeError)):
        g.set_state(g.get_state().to("meta"))
    ck = {"gen": g.get_state()}
    g.set_state(ck["gen"].cpu())  # what resume does with a CPU-loaded checkpoint


# --- 2: torch.export programs move with the model ------------------------------------------------------

def test_an_exported_program_moves_with_to(tmp_path):
    from ferbench.models.loading import _file_net

    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 46 * 46, 7)).eval()
    ep = torch.export.export(net, (torch.zeros(2, 1, 48, 48),), dynamic_shapes=({0: torch.export.Dim("b")},))
    torch.export.save(ep, tmp_path / "m.pt2")
    loaded, fmt = _file_net(tmp_path / "m.pt2", "test")
    model = FERModel(loaded, InputSpec(), name="m").eval()  # .eval() must not reach the program
    model.to(torch.float64)  # the same _apply as .to("cuda"): every weight must follow
    assert fmt == "export" and {p.dtype for p in model.parameters()} == {torch.float64}
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in net.parameters())
    assert model(torch.zeros(3, 1, 48, 48, dtype=torch.float64)).dtype == torch.float64


# --- 3 and 12: Ray options ----------------------------------------------------------------------------

def test_gpu_tasks_get_a_fresh_worker_process_and_cpu_tasks_reuse_theirs():
    pytest.importorskip("ray")
    from ferbench.executors.ray import remote_tasks

    tasks = remote_tasks()
    assert tasks[True]._default_options.get("max_calls") == 1
    assert tasks[True]._default_options.get("num_gpus") == 1
    assert not tasks[False]._default_options.get("max_calls")  # CPU workers keep their cached splits


def test_an_onnx_model_reserves_no_gpu_by_default():
    pytest.importorskip("ray")
    from ferbench.executors.ray import RayExecutor
    from ferbench.schema.suite import ResourcesConfig

    class Exp:
        resources = None

        class user_model:
            load, checkpoint = "m.onnx", None

    assert RayExecutor()._resources(Exp(), has_gpus=True).gpus == 0
    Exp.resources = ResourcesConfig(gpus=1)  # workers with onnxruntime-gpu: the suite asks
    assert RayExecutor()._resources(Exp(), has_gpus=True).gpus == 1


def test_onnx_runs_on_cuda_where_onnxruntime_has_the_provider(monkeypatch):
    ort = pytest.importorskip("onnxruntime")
    from ferbench.models import loading

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert loading.onnx_providers(CUDA) == ["CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert loading.onnx_providers(CUDA)[0] == "CUDAExecutionProvider"
    assert loading.onnx_providers(torch.device("cpu")) == ["CPUExecutionProvider"]


# --- 4: compile on CUDA ---------------------------------------------------------------------------------

def test_compile_on_cuda_without_a_c_compiler_says_why(monkeypatch, tmp_path):
    pytest.importorskip("triton")
    monkeypatch.setenv("PATH", str(tmp_path))  # no compiler anywhere on PATH
    monkeypatch.delenv("CC", raising=False)
    assert "C compiler" in engine.compile_unavailable(CUDA)
    cc = tmp_path / "cc"
    cc.write_text("#!/bin/sh\n")
    cc.chmod(0o755)
    assert engine.compile_unavailable(CUDA) is None
    assert "MPS" in engine.compile_unavailable(torch.device("mps"))


# --- 5 and 17: augmentation -----------------------------------------------------------------------------

def test_border_sampling_without_the_border_mode_equals_it(monkeypatch):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 1, 48, 48, generator=g)
    cfg = AugmentConfig(rotation=30, shift=0.3, zoom=0.3, shear=10, flip=True)
    theta = engine.augment_batch.__globals__["random_affine"](16, cfg, torch.Generator().manual_seed(1), "cpu")
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    want = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    got = F.grid_sample(x, clamp_to_border(grid, 48, 48), padding_mode="zeros", align_corners=False)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    real = F.grid_sample

    def mps_like(*a, padding_mode="zeros", **k):  # MPS in torch < 2.5 has no border mode
        if padding_mode == "border":
            raise NotImplementedError("grid_sampler_2d: padding_mode border is not supported on MPS")
        return real(*a, padding_mode=padding_mode, **k)

    monkeypatch.setattr(F, "grid_sample", mps_like)
    torch.testing.assert_close(augment_batch(x, cfg, torch.Generator().manual_seed(1)), want, atol=1e-5, rtol=0)


def test_augmentation_draws_on_the_cpu_generator_whatever_the_image_device():
    """One seed, the same warps on every device: the engine's augmentation generator is a CPU one (a
    CUDA generator could not even be built here) and its draws move to the images' device."""
    cfg = AugmentConfig(rotation=15, shift=0.1, flip=True)
    x = torch.rand(4, 1, 48, 48)
    out = augment_batch(x.to("meta"), cfg, torch.Generator().manual_seed(3))
    assert out.device.type == "meta" and out.shape == x.shape
    loop = _Loop(create_model("mlp"), TrainConfig(), CUDA, seed=0, has_val=False, autocast=None)
    assert loop.aug_gen.device.type == "cpu"


# --- 7 and 8: precision choice --------------------------------------------------------------------------

def test_amp_auto_takes_fp16_before_ampere_and_bf16_from_it(fake_cuda):
    fake_cuda["v"] = (7, 5)  # T4: torch.cuda.is_bf16_supported() says True (emulated)
    assert amp_dtype(TrainConfig(), CUDA) == torch.float16
    fake_cuda["v"] = (8, 0)  # A100
    assert amp_dtype(TrainConfig(), CUDA) == torch.bfloat16


def test_a_recurrent_model_on_cuda_never_records_bf16_while_cudnn_runs_fp16(fake_cuda):
    rnn = create_model("rnn")
    assert model_amp_dtype(TrainConfig(), CUDA, rnn) == torch.float16  # loss-scaled, recorded as run
    with pytest.raises(ValueError, match="amp: fp16"):
        model_amp_dtype(TrainConfig(amp="bf16"), CUDA, rnn)
    assert model_amp_dtype(TrainConfig(), CUDA, create_model("basic_cnn")) == torch.bfloat16


# --- 15: channels-last into the first convolution --------------------------------------------------------

def test_a_three_channel_network_receives_channels_last_input():
    seen = []
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 7))
    net[0].register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    m = FERModel(net, InputSpec(32, 3, (0.5, 0.5, 0.5), (0.2, 0.2, 0.2)))
    prepare_model(m, TrainConfig(), torch.device("cpu"))
    x = torch.rand(2, 1, 48, 48).contiguous(memory_format=torch.channels_last)
    m(x)
    assert seen[-1].shape[1] == 3 and seen[-1].is_contiguous(memory_format=torch.channels_last)
    m.set_input_size(40)  # a new adapter keeps the memory format
    m(x)
    assert seen[-1].is_contiguous(memory_format=torch.channels_last)


# --- 17: deterministic option ---------------------------------------------------------------------------

def test_deterministic_switches_torch_and_cudnn_and_is_part_of_the_config():
    from ferbench.schema.experiment import TrainExperiment

    try:
        prepare_model(create_model("mlp"), TrainConfig(deterministic=True), torch.device("cpu"))
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        assert not torch.backends.cudnn.benchmark
        prepare_model(create_model("mlp"), TrainConfig(), torch.device("cpu"))
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        engine.apply_determinism(False, torch.device("cpu"))
    exp = TrainExperiment(id="e", study="s", label="e", model="mlp", seed=0, split={"kind": "official"},
                          train=TrainConfig(deterministic=True))
    assert exp.model_dump(mode="json")["train"]["deterministic"] is True  # result.json's "config"


def test_deterministic_off_leaves_the_config_hash_of_results_stored_before_it():
    from ferbench.schema.experiment import TrainExperiment

    kw = dict(id="e", study="s", label="e", model="mlp", seed=0, split={"kind": "official"})
    off, on = TrainExperiment(**kw, train=TrainConfig()), TrainExperiment(**kw, train=TrainConfig(deterministic=True))
    assert off.config_hash() == "28308c330717a3ee"  # what ferbench computed before the option existed
    assert on.config_hash() != off.config_hash()  # switched on, it is a different experiment


def test_timing_waits_for_mps_and_cuda(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.mps, "synchronize", lambda: calls.append("mps"))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append("cuda"))
    for d in ("mps", "cuda", "cpu"):
        engine.synchronize(torch.device(d))
    assert calls == ["mps", "cuda"]


# --- 16: Grad-CAM explains the class the caption shows ---------------------------------------------------

def test_gradcam_explains_the_given_class_not_its_own_fp32_argmax():
    from ferbench.gradcam import gradcam

    torch.manual_seed(0)
    m = create_model("basic_cnn").eval()
    img = (np.random.default_rng(0).random((1, 48, 48)) * 255).astype(np.uint8)
    own = int(m(torch.from_numpy(img).float().div(255).unsqueeze(1)).argmax())
    other = (own + 1) % 7  # what a bf16 evaluation may have predicted and the caption shows
    np.testing.assert_allclose(gradcam(m, img, torch.device("cpu")), gradcam(m, img, torch.device("cpu"), [own]))
    assert not np.allclose(gradcam(m, img, torch.device("cpu"), [other]), gradcam(m, img, torch.device("cpu"), [own]))


# --- 10: a backbone frozen for the whole run is not written every epoch --------------------------------------

def test_checkpoints_and_best_state_leave_out_a_backbone_frozen_for_good(tmp_path):
    from ferbench.engine import fit, seed_everything
    from ferbench.store import Checkpoint

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (48, 48, 48), dtype=np.uint8), rng.integers(0, 7, 48)
    cfg = TrainConfig(epochs=3, batch_size=16, input_size=32)

    def run(epochs, ck=None, kill=None):
        seed_everything(0)
        m = create_model("mobilenet_v2_transfer", pretrained=False)
        m.freeze_backbone(True)  # as with ImageNet weights
        try:
            r = fit(m, x[:32], y[:32], x[32:], y[32:], cfg.model_copy(update={"epochs": epochs}),
                    device=torch.device("cpu"), checkpoint=ck, on_epoch=kill)
        except KeyboardInterrupt:
            return m, None
        return m, r

    ref, _ = run(3)
    ck = Checkpoint(tmp_path / "ck.pt")

    def kill(rec):
        if rec["epoch"] == 2:
            raise KeyboardInterrupt

    run(3, ck, kill)
    state = torch.load(ck.path, weights_only=True)
    assert state["model"] and not any(k.startswith("net.backbone.") for k in state["model"])
    assert not any(k.startswith("net.backbone.") for k in state["best_state"])
    full = sum(v.numel() for v in ref.state_dict().values())
    assert sum(v.numel() for v in state["model"].values()) < full / 10  # the head only (7 % here)
    got, r = run(3, ck)
    assert r.resumed_from_epoch == 1
    for a, b in zip(ref.state_dict().values(), got.state_dict().values()):
        assert torch.equal(a, b)


# --- 14: one compiled graph per mode, whatever the batch size --------------------------------------------

def test_compile_builds_one_graph_for_training_and_one_for_evaluation(monkeypatch):
    from torch._dynamo.utils import counters

    from ferbench.engine import fit

    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: real(fn, backend="eager", **kw))  # no C++ build
    monkeypatch.setattr(engine, "compile_unavailable", lambda device: None)
    torch._dynamo.reset()
    counters.clear()
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (100, 48, 48), dtype=np.uint8), rng.integers(0, 7, 100)
    # 70 training images in batches of 32: a last batch of 6; 30 validation images in batches of 16 and 14
    fit(create_model("cnn"), x[:70], y[:70], x[70:], y[70:],
        TrainConfig(epochs=2, batch_size=32, eval_batch_size=16, compile=True), device=torch.device("cpu"))
    assert counters["stats"]["unique_graphs"] == 2  # not recompiled for the partial batches
    torch._dynamo.reset()


def test_inference_timing_synchronizes_through_the_device_generic_wait(monkeypatch):
    """measure_inference (result.json's inference speed) waits for MPS too, not for CUDA alone."""
    waited = []
    monkeypatch.setattr(engine, "synchronize", lambda d: waited.append(d.type))
    engine.measure_inference(create_model("mlp"), torch.device("cpu"), batch_size=4, iters=2, warmup=1)
    assert waited == ["cpu", "cpu"]  # before and after the timed loop, whatever the device
