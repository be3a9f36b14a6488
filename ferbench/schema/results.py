"""The typed result contract: what ``run.json`` and each ``result.json`` hold.

Written and read only through :class:`ferbench.store.RunStore`. ``ModelResult`` covers every model
scored on a study's test set, trained (``kind: train``) or loaded from a file (``kind: load``);
``LLMResult`` covers one LLM endpoint on the study's sample. A file written by another result
format is refused with one message (:class:`ResultFormatError`), never misread.
"""
from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, Union

from pydantic import BeforeValidator, Field, TypeAdapter, model_serializer, model_validator

from .clip import CLIPInfo
from .experiment import MODEL_KINDS, CLIPExperiment, LLMExperiment, LoadExperiment, TrainExperiment
from .llm import EndpointConfig
from .base import StrictRecord as _Strict
from .published import PublishedInfo

RESULT_FORMAT = 2


def _count(v: Any) -> int:
    """An integer as JSON or numpy gives it; never a bool, a string or a float (no silent coercion)."""
    if isinstance(v, (bool, str, bytes, float)):
        raise ValueError(f"an integer is expected, not {type(v).__name__} {v!r:.40}")
    try:
        return operator.index(v)
    except TypeError:
        raise ValueError(f"an integer is expected, not {type(v).__name__}") from None


def _number(v: Any) -> Any:
    if isinstance(v, (bool, str, bytes)):
        raise ValueError(f"a number is expected, not {type(v).__name__} {v!r:.40}")
    return v


# Strict, range-checked numbers: a hand-edited result.json ("0.99", true, NaN, 7.5, n: -3) is refused.
Count = Annotated[int, BeforeValidator(_count), Field(ge=0)]
Number = Annotated[float, BeforeValidator(_number), Field(allow_inf_nan=False)]
NonNegative = Annotated[float, BeforeValidator(_number), Field(ge=0, allow_inf_nan=False)]
Share = Annotated[float, BeforeValidator(_number), Field(ge=0, le=1, allow_inf_nan=False)]
Interval = tuple[Share, Share]
Loss = Annotated[float, BeforeValidator(_number)]  # a diverged training run honestly records NaN or inf


class SplitInfo(_Strict):
    """What a result records about its split (the one summary of a split: a Ray worker sends it back)."""
    description: str
    sizes: dict[str, int]
    classes: list[str]
    leaky: bool = False
    notes: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, split) -> "SplitInfo":
        """From a :class:`ferbench.data.splits.SplitData` (or anything with its fields and ``sizes()``)."""
        return cls(description=split.description, sizes=split.sizes(), classes=list(split.classes),
                   leaky=split.leaky, notes=list(split.notes))


class PerClass(_Strict):
    precision: list[Share]
    recall: list[Share]
    f1: list[Share]
    support: list[Count]

    @model_validator(mode="after")
    def _one_length(self):
        if not len(self.precision) == len(self.recall) == len(self.f1) == len(self.support) > 0:
            raise ValueError("per_class lists must have one entry per class")
        return self


class EvalMetrics(_Strict):
    """One evaluation (a model on val or test, an LLM on its sample)."""
    n: Annotated[Count, Field(ge=1)]
    accuracy: Share
    accuracy_ci: Interval
    macro_f1: Share
    macro_f1_ci: Interval
    weighted_f1: Share
    weighted_f1_ci: Interval | None = None
    macro_precision: Share | None = None
    macro_recall: Share | None = None
    weighted_precision: Share | None = None
    weighted_recall: Share | None = None
    errors_total: Count | None = None  # images classified wrongly (n - correct)
    loss: NonNegative | None = None  # mean unweighted cross-entropy of the predicted probabilities (models)
    per_class: PerClass
    per_class_accuracy: list[Share | None]
    confusion: list[list[Count]]  # rows: true class; columns: predicted class, then 'no answer' if listed
    confusion_no_answer: bool = False  # True: a last column counts answers naming no class (LLMs)
    top2_accuracy: Share | None = None
    unparsed: Count | None = None  # LLM answers naming no class
    refused: Count | None = None  # LLM refusals (a refusal field, or a refusal in words naming no class)
    filtered: Count | None = None  # LLM answers blocked by a content filter (finish_reason content_filter)
    top_k: Count | None = None  # length of the rankings scored (a 'rank' strategy)
    top_k_accuracy: Share | None = None  # true class among the first top_k of the ranking
    errors: Count | None = None  # LLM requests that got no answer (failed or not sent)
    truncated: Count | None = None  # LLM answers cut by the completion budget
    not_sent: Count | None = None  # LLM requests held back (the --max-cost cap)
    answered: Count | None = None  # LLM requests that got an answer (parsed or not)
    min_detectable_difference: NonNegative | None = None  # accuracy gap this many images detect (alpha 0.05, power 0.8)

    @model_validator(mode="after")
    def _consistent(self):
        """Shapes and orders any scoring gives; the values themselves are checked against predictions.csv."""
        k = len(self.per_class.support)
        width = k + 1 if self.confusion_no_answer else k
        if len(self.confusion) != k or any(len(row) != width for row in self.confusion):
            raise ValueError(f"confusion must be {k} x {width} for {k} classes")
        if len(self.per_class_accuracy) != k:
            raise ValueError(f"per_class_accuracy must have {k} entries")
        if sum(map(sum, self.confusion)) != self.n or sum(self.per_class.support) != self.n:
            raise ValueError("confusion counts and class supports must add up to n")
        for name in ("accuracy_ci", "macro_f1_ci", "weighted_f1_ci"):
            ci = getattr(self, name)
            if ci is not None and ci[0] > ci[1] + 1e-12:
                raise ValueError(f"{name} is upside down ({ci[0]} > {ci[1]})")
        lo, hi = self.accuracy_ci
        if not lo - 1e-9 <= self.accuracy <= hi + 1e-9:  # Wilson contains its estimate (up to rounding at 0 and 1)
            raise ValueError("accuracy lies outside accuracy_ci")
        return self


class EpochRecord(_Strict):
    epoch: Count
    train_loss: Loss
    train_accuracy: Share
    lr: NonNegative
    val_loss: Loss | None = None
    val_accuracy: Share | None = None
    seconds: NonNegative


class InferenceTiming(_Strict):
    batch_size: Count
    ms_per_image: NonNegative
    images_per_second: NonNegative


class Timing(_Strict):
    inference: InferenceTiming | None = None
    train_seconds: NonNegative | None = None
    seconds_per_epoch: NonNegative | None = None
    evaluation_seconds: NonNegative | None = None
    torch_threads: Count | None = None  # CPU threads torch used: results on CPU can differ in the 5th decimal with it


class Parameters(_Strict):
    total: Count
    trainable: Count
    counted_from: str = "module parameters"  # or 'ONNX initializers', 'exported program state'
    flops: Count | None = None  # one forward pass on one image (torch's FlopCounterMode); None: not counted


class TrainingInfo(_Strict):
    epochs_run: int = 0
    best_epoch: int | None = None
    reported_epoch: int | None = None  # the epoch whose weights were evaluated
    stopped_early: bool = False
    resumed_from_epoch: int | None = None
    feature_cache: bool = False
    eval_only: bool = False
    # trained with cross-entropy on the dataset's label distributions (FER+'s votes), not its hard labels
    soft_labels: bool = False
    checkpoint_discarded: str | None = None  # why an unreadable checkpoint was not resumed from
    # 'bfloat16' / 'float16': training steps ran under autocast; None: fp32; 'unknown': written before
    # ferbench recorded it (amp: auto then autocast on CUDA only)
    autocast: str | None = "unknown"


class LoadInfo(_Strict):
    file: str
    format: Literal["torchscript", "export", "onnx", "state_dict", "predictions"]
    outputs: Literal["logits", "probabilities", "log_probabilities", "labels"]
    outputs_detected: bool  # True: inferred on the dry run; False: declared in the suite
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    notes: list[str] = Field(default_factory=list)
    # A predictions file: per partition, [images it covers, images the partition holds]
    coverage: dict[Literal["val", "test"], tuple[Count, Count]] = Field(default_factory=dict)
    published: PublishedInfo | None = None  # a published answers file: matching, missing ids, top-k, gt checks


class GradCAMInfo(_Strict):
    available: bool
    reason: str | None = None  # why not, when not


class ModelInfoRecord(_Strict):
    name: str
    study: str
    paper: str
    input: str
    pretrained: bool = False
    notes: str = ""
    weights: str | None = None
    keras_kernel_init: str = "glorot_uniform"
    cpu_bf16: bool = True
    adapts_input: bool = False  # built for the study's input (in_chans, input_size)


class _ResultBase(_Strict):
    format: int = RESULT_FORMAT
    id: str
    study: str
    label: str
    status: Literal["ok", "failed", "skipped", "pending"]  # pending: a Batch API job still running
    config_hash: str
    profile: str
    device: str
    seed: int = 0
    fold: int | None = None
    deviations: list[str] = Field(default_factory=list)
    split: SplitInfo | None = None
    error: str | None = None
    reason: str | None = None
    wall_seconds: float = 0.0
    finished: str = ""
    files: dict[str, str] = Field(default_factory=dict)  # file name -> sha256 this result vouches for

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def is_model(self) -> bool:
        """Trained or loaded: a model scored on the study's test set (everything but an LLM)."""
        return self.kind in MODEL_KINDS

    @property
    def headline_split(self) -> str | None:
        """What the result is judged by: test, an LLM's sample, or val for a study without a test set."""
        return next((k for k in ("test", "sample", "val") if k in getattr(self, "metrics", {})), None)

    @property
    def headline(self) -> "EvalMetrics | None":
        part = self.headline_split
        return self.metrics[part] if part else None


class CrossEval(_Strict):
    """A model scored on a further dataset's test set, on the classes the two share."""
    dataset: str
    train_dataset: str
    classes: list[str]  # scored on these
    images: Count  # the test set's size
    left_out: Count  # images of classes the model lacks (e.g. contempt for a 7-class model)
    left_out_classes: list[str] = Field(default_factory=list)
    metrics: EvalMetrics | None = None  # None: no image of a shared class


class ModelResult(_ResultBase):
    """A trained or loaded model, evaluated on the study's val and test partitions."""
    kind: Literal["train", "load", "clip"]
    config: Annotated[Union[TrainExperiment, LoadExperiment, CLIPExperiment], Field(discriminator="kind")]
    model: str | None = None
    metrics: dict[Literal["val", "test"], EvalMetrics] = Field(default_factory=dict)
    # Test-time augmentation the metrics were scored with; with one, single_view holds the same model's
    # scores on the image alone (predictions.csv rows 'val/single', 'test/single').
    tta: Literal["none", "flip", "tencrop"] = "none"
    single_view: dict[Literal["val", "test"], EvalMetrics] = Field(default_factory=dict)
    timing: Timing | None = None
    parameters: Parameters | None = None
    input: str | None = None
    history: list[EpochRecord] = Field(default_factory=list)
    training: TrainingInfo | None = None
    load: LoadInfo | None = None
    model_info: ModelInfoRecord | None = None
    gradcam: GradCAMInfo | None = None
    cross: dict[str, CrossEval] = Field(default_factory=dict)
    clip: CLIPInfo | None = None  # kind clip: weights, prompts or the probe's C

    @model_validator(mode="after")
    def _complete_when_ok(self):
        if self.status == "ok" and not self.metrics:
            raise ValueError("a result with status ok needs test (or, without a test set, val) metrics")
        return self



class LLMSample(_Strict):
    """Which images an LLM was asked about: drawn per class from a partition, with a seed."""
    split: str
    per_class: Count | None = None
    seed: int
    n: Count
    ids: list[str]
    notes: list[str] = Field(default_factory=list)
    image: str  # how the image was sent, e.g. "48x48 PNG (grayscale, original)"


class LLMUsage(_Strict):
    """Requests, tokens and money one LLM experiment took."""
    requests_sent: Count = 0
    cache_hits: Count = 0
    resumed_answers: Count = 0
    truncated_retries: Count = 0
    prompt_tokens: Count = 0
    completion_tokens: Count = 0
    reasoning_tokens: Count = 0
    estimated_cost_usd: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    cost_this_run_usd: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    spent_usd_all_runs: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    via_batch: Count = 0


class RepeatedAnswers(_Strict):
    """One image asked ``repeats`` times: each answer's class ('' for none), the majority and its share."""
    id: str
    answers: list[str]
    majority: str  # '' when no class won: the image counts wrong
    agreement: Share  # answers naming the majority / repeats


class LLMRepeats(_Strict):
    """Stability of an LLM asked several times per image at a temperature above 0 (llm.repeats)."""
    n: Annotated[Count, Field(ge=2)]
    temperature: Number | None = None
    agreement_mean: Share  # mean over images of the majority answer's share
    all_agree: Share  # images whose answers all agree / images
    images: Count
    per_image: list[RepeatedAnswers] = Field(default_factory=list)


class UnparsedAnswer(_Strict):
    id: str
    raw: str  # the model's text (cut to the client's bound), escaped wherever it is shown
    outcome: Literal["unparsed", "refusal", "filtered"] = "unparsed"


class LLMSeveral(_Strict):
    """Several images per request: the requests sent, batches answered with the wrong count (asked again,
    then split), and the answers that came from a split batch."""
    images_per_request: Count
    requests: Count = 0
    miscounts: Count = 0
    splits: Count = 0
    split_images: Count = 0


class LLMAdaptation(_Strict):
    """A request change an endpoint forced (it refused a field with a 400), as the run applied it."""
    param: str
    code: str | None = None
    action: str
    server_said: str = ""

    @property
    def description(self) -> str:
        return f"{self.param}: {self.action}"


class LLMRequest(_Strict):
    """The request fields as actually sent, without the prompt and the image; a field not sent is absent."""
    model: str
    max_tokens: Count | None = None
    max_completion_tokens: Count | None = None
    max_output_tokens: Count | None = None  # Responses API
    temperature: Number | None = None
    reasoning_effort: str | None = None
    reasoning: dict[str, str] | None = None  # Responses API: {effort}
    response_format: dict[str, Any] | None = None  # a JSON schema, passed on as sent
    text: dict[str, Any] | None = None  # Responses API: the JSON schema
    extra_body: dict[str, Any] | None = None  # fields beyond OpenAI's (vLLM's structured outputs), as sent

    @model_serializer(mode="wrap")
    def _sent_only(self, handler):
        return {k: v for k, v in handler(self).items() if v is not None}


class LLMEstimate(_Strict):
    """Requests, tokens and cost of an LLM experiment estimated before anything is sent."""
    requests: Count
    batch_requests: Count = 0
    prompt_tokens_per_request: Count
    completion_tokens_per_request: Count
    completion_assumption: str = ""
    estimated_prompt_tokens: Count
    estimated_completion_tokens: Count
    estimated_cost_usd: NonNegative | None = None  # None: unpriced
    max_cost_usd: NonNegative | None = None
    prices_per_1m: list[NonNegative] | None = None  # [input, output]
    batch_price_factor: NonNegative | None = None


class LLMBatch(_Strict):
    """The Batch API job of an LLM experiment."""
    batch_id: str
    status: str
    requests: Count
    input_file_id: str | None = None
    cost_usd: NonNegative | None = None  # once settled, priced endpoints only
    failed_lines: Count | None = None  # once settled


class LLMServer(_Strict):
    """The local server an open model was asked through (vLLM, Ollama, llama.cpp, LM Studio)."""
    provider: str
    title: str
    models: list[str] = Field(default_factory=list)  # what its GET /models listed (the first 20)
    not_sent: dict[str, str] = Field(default_factory=dict)  # request field -> why this server did not get it
    docs: list[str] = Field(default_factory=list)  # the pages those rules come from


class LLMThroughput(_Strict):
    """How long this run's requests took: the cost of a local model (a hosted one is priced per token)."""
    query_seconds: NonNegative  # wall time from the first request sent to the last answer, this run
    images: Count  # images this run sent (answers from the cache or an earlier run are not timed)
    concurrency: Count
    images_per_second: NonNegative | None = None
    gpu: str | None = None  # as the suite names it
    gpu_count: Count = 1
    gpu_seconds_per_1000: NonNegative | None = None  # query_seconds x gpu_count per 1,000 images


class LLMFields(_Strict):
    """What an LLM experiment adds to the common result fields (built by ferbench.llm.query)."""
    endpoint: EndpointConfig | None = None  # base_url as resolved (suite, else the provider's variable)
    prompt: str | None = None
    response_format: dict[str, Any] | None = None  # the JSON schema asked for, if any
    sample: LLMSample | None = None
    metrics: dict[Literal["sample"], EvalMetrics] = Field(default_factory=dict)
    usage: LLMUsage = Field(default_factory=LLMUsage)
    unparsed: list[UnparsedAnswer] = Field(default_factory=list)
    strategy: str | None = None  # the prompt strategy (ferbench.llm.strategies); None: results before them
    parse_rule: str | None = None  # the strategy's parse rule, as the run applied it
    several: LLMSeveral | None = None  # images_per_request > 1
    adaptations: list[LLMAdaptation] = Field(default_factory=list)  # request changes the endpoint forced
    request: LLMRequest | None = None
    estimate: LLMEstimate | None = None
    batch: LLMBatch | None = None
    server: LLMServer | None = None  # local servers only
    throughput: LLMThroughput | None = None  # None: no request was sent this run (all cached or resumed)
    repeats: LLMRepeats | None = None  # llm.repeats above 1: majority answers, agreement


class LLMResult(_ResultBase, LLMFields):
    """One LLM endpoint asked about every image of the study's sample."""
    kind: Literal["llm"]
    config: LLMExperiment


ExperimentResult = Annotated[Union[ModelResult, LLMResult], Field(discriminator="kind")]
RESULT = TypeAdapter(ExperimentResult)


class DataInfo(_Strict):
    source: str
    origin: str  # where the source came from: --data, $FERBENCH_DATA, the suite's data:
    counts: dict[str, dict[str, int]]
    images: int
    fingerprint: str
    skipped_unreadable: list[str] = Field(default_factory=list)
    cross: dict[str, str] = Field(default_factory=dict)  # further test sets: {spec: content fingerprint}


class StudyMeta(_Strict):
    name: str
    paper: str | None = None
    title: str | None = None
    description: str = ""
    split: str
    split_sizes: dict[str, int]
    classes: list[str]
    leaky: bool = False
    notes: list[str] = Field(default_factory=list)


class ThreadChoice(_Strict):
    """``--threads``: what was asked (None: torch's default, the same on every run of a machine) and used."""
    requested: str | None = None  # "auto", a number, or None
    used: int
    why: str = ""


class RunHeader(_Strict):
    """``run.json``: what was run, on what, where, with which versions."""
    format: int = RESULT_FORMAT
    suite: str
    description: str = ""
    suite_file: str
    profile: str
    profile_description: str = ""
    overrides: dict[str, Any] = Field(default_factory=dict)
    data: DataInfo
    device: str
    environment: dict[str, Any]
    started: str
    finished: str | None = None
    wall_seconds: float | None = None
    experiments: list[str]
    studies: list[StudyMeta]
    suite_studies: list[str] = Field(default_factory=list)  # every study of the suite in its order (--only runs)
    threads: ThreadChoice | None = None  # CPU threads torch trained with, and why that many
