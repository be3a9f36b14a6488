"""The ``llm:`` block of a study: endpoints, the stratified sample, prompt and request settings."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..limits import MAX_PER_CLASS, MAX_PRICE_PER_1M, MAX_REQUEST_SECONDS, MAX_WAIT_SECONDS, Seed
from .base import Strict as _Strict
from .llm_sweep import MAX_REPEATS, LLMSensitivityConfig

MAX_IMAGES_PER_REQUEST = 50

ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


class EndpointConfig(_Strict):
    """One model behind an OpenAI-compatible API (OpenAI, Azure OpenAI, Anthropic, Gemini, vLLM, Ollama ...)."""

    model: str = Field(min_length=1, description="Model name; for Azure OpenAI the deployment name.")
    base_url: str | None = Field(None, description=(
        "API root, e.g. http://localhost:11434/v1. Unset: $OPENAI_BASE_URL, else OpenAI. For provider 'azure' "
        "the resource endpoint, e.g. https://NAME.openai.azure.com (else $AZURE_OPENAI_ENDPOINT)."))
    provider: str = Field("openai", description=(
        "A registered provider (ferbench.llm.providers). 'openai': any OpenAI-compatible server, Bearer key. "
        "'azure': Azure OpenAI (deployment in the URL path, api-version query parameter, api-key header); "
        "needs api_version. 'vllm', 'ollama', 'llamacpp', 'lmstudio': an open model on a local server, each "
        "handled as its documentation says (docs/vlm-servers.md)."))
    api_version: str | None = Field(None, description="Azure OpenAI api-version, e.g. 2025-04-01-preview.")
    api: Literal["chat", "responses"] = Field("chat", description=(
        "'chat': /chat/completions (every compatible server). 'responses': OpenAI's Responses API /responses."))
    api_key_env: str = Field("OPENAI_API_KEY", description="NAME of the environment variable holding the key.")
    temperature: float | None = Field(0.0, ge=0, le=2, description=(
        "Sampling temperature (0: repeatable answers; the llm_vs_nn paper states none). None: not sent (server default). Reasoning models refuse "
        "anything but their default; ferbench then drops it once, and records that deviation."))
    max_completion_tokens: int = Field(1024, gt=0, le=200_000, description=(
        "Completion budget per request, hidden reasoning tokens included. An answer cut off empty by it is "
        "recorded as truncated and asked again once with truncation_retry_factor times the budget."))
    token_param: Literal["auto", "max_completion_tokens", "max_tokens"] = Field("auto", description=(
        "Request field carrying the budget (chat API). 'auto': max_completion_tokens for OpenAI and Azure, "
        "max_tokens for other servers; a 400 'unsupported_parameter' answer switches it once."))
    truncation_retry_factor: float = Field(4.0, ge=1, le=64, description=(
        "Budget multiplier for the single re-ask of an answer truncated by the budget (1: no re-ask)."))
    reasoning_effort: ReasoningEffort | None = Field(None, description=(
        "Reasoning effort for reasoning models (chat: reasoning_effort; responses: reasoning.effort). "
        "None: not sent."))
    detail: Literal["low", "high", "auto"] = Field("low", description="Image detail level requested.")
    price_input_per_1m: float | None = Field(None, ge=0, le=MAX_PRICE_PER_1M, description="USD per 1M input tokens (list price).")
    price_output_per_1m: float | None = Field(None, ge=0, le=MAX_PRICE_PER_1M, description="USD per 1M output tokens, reasoning included.")
    expected_completion_tokens: int | None = Field(None, gt=0, description=(
        "For cost estimates only: completion tokens a typical answer uses (reasoning included). Unset: "
        "a rule of thumb by model and reasoning effort, shown as an assumption."))
    batch: bool = Field(False, description=(
        "Send the whole sample through the OpenAI Batch API (files + batches; answered within 24 h, at "
        "batch_price_factor times the price). Resumable: the batch id is recorded."))
    batch_price_factor: float = Field(0.5, gt=0, le=1, description="Batch API price relative to the list price.")
    label: str | None = Field(None, description="Row name in tables; default the model name.")
    gpu: str | None = Field(None, max_length=80, description=(
        "Local servers: the accelerator the server runs on, as you want it named (e.g. '1x H100 80GB'). With it "
        "the report shows GPU-seconds per 1,000 images (wall time of the requests x gpu_count); without it, "
        "wall seconds."))
    gpu_count: int = Field(1, ge=1, le=64, description="Accelerators the server uses (tensor parallelism).")
    images_per_request: int | None = Field(None, ge=1, le=MAX_IMAGES_PER_REQUEST, description=(
        "Overrides the llm block's images_per_request for this endpoint (e.g. one endpoint asked one image per "
        "request and one asked 20, on the same sample, compared with McNemar)."))

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data):
        # older suites say max_tokens: the same budget, now sent under the field name each server accepts
        if isinstance(data, dict) and "max_tokens" in data:
            if "max_completion_tokens" in data:
                raise ValueError("give max_completion_tokens only (max_tokens is its older name)")
            data = {**data, "max_completion_tokens": data["max_tokens"]}
            del data["max_tokens"]
        return _local_key_env(data)

    @field_validator("api_key_env")
    @classmethod
    def _env_name_not_key(cls, v):
        if v.startswith("sk-") or len(v) > 64 or not v.replace("_", "").isalnum():
            raise ValueError("api_key_env takes the NAME of an environment variable, never the key itself")
        return v

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, v):
        from ..llm.providers import provider

        provider(v)  # raises with the known names
        return v

    @model_validator(mode="after")
    def _consistent(self):
        from ..llm.providers import list_providers, provider

        prov = provider(self.provider)
        if prov.needs_api_version and not self.api_version:
            raise ValueError(f"provider {self.provider!r} needs api_version (e.g. the Azure OpenAI api-version "
                             "2025-04-01-preview)")
        if not prov.needs_api_version and self.api_version:
            uses = [n for n in list_providers() if provider(n).needs_api_version]
            raise ValueError(f"api_version is only used with provider {' or '.join(map(repr, uses))}")
        if self.api == "responses" and self.token_param == "max_tokens":
            raise ValueError("token_param 'max_tokens' does not exist in the Responses API (it uses max_output_tokens)")
        if self.batch and (self.images_per_request or 1) > 1:
            raise ValueError("batch: true sends one image per request; give images_per_request 1 (or no batch)")
        if self.batch and not prov.batch:
            raise ValueError("batch: true is implemented for OpenAI's Batch API only (Azure's global-batch "
                             "deployments use another upload flow)")
        if prov.local:
            _check_local(self, prov)
        elif self.gpu is not None:
            raise ValueError("gpu is for local servers (vllm, ollama, llamacpp, lmstudio): a hosted API is priced "
                             "per token")
        return self

    @property
    def priced(self) -> bool:
        return self.price_input_per_1m is not None and self.price_output_per_1m is not None


def _local_key_env(data):
    """A local server's key comes from the variable the server itself reads (VLLM_API_KEY ...), never from
    OPENAI_API_KEY by default: a real OpenAI key is not sent to another server unasked."""
    if isinstance(data, dict) and "api_key_env" not in data and isinstance(data.get("provider"), str):
        from ..llm.providers import list_providers, provider

        if data["provider"] in list_providers() and provider(data["provider"]).key_env:
            data = {**data, "api_key_env": provider(data["provider"]).key_env}
    return data


def _check_local(ep: EndpointConfig, prov) -> None:
    """What a local server cannot do, refused before anything runs (each rule from the server's docs)."""
    if ep.api not in prov.apis:
        raise ValueError(f"provider {ep.provider!r}: ferbench asks {prov.title} through /v1/chat/completions "
                         f"(api: chat); its other endpoints document fewer fields")
    if ep.token_param not in ("auto", *prov.token_params):
        raise ValueError(f"provider {ep.provider!r}: {prov.title} reads the budget from "
                         f"{' or '.join(prov.token_params)} only; {ep.token_param} would be ignored and the answer "
                         "unbounded (use token_param: auto)")
    if ep.price_input_per_1m is not None or ep.price_output_per_1m is not None:
        raise ValueError(f"provider {ep.provider!r}: an open model on your own hardware has no token prices (its cost "
                         "is 0); ferbench records wall time, and GPU-seconds per 1,000 images with gpu:")


class SampleConfig(_Strict):
    split: Literal["test", "val", "PrivateTest", "PublicTest", "val+test", "PublicTest+PrivateTest"] = Field(
        "PrivateTest", description="Partition sampled: test (PrivateTest), val (PublicTest) or both (7,178 images).")
    per_class: int | None = Field(5, gt=0, le=MAX_PER_CLASS, description="Images per class; None: the whole split.")
    seed: Seed = 0


class LLMConfig(_Strict):
    endpoints: list[EndpointConfig] = Field(min_length=1)
    sample: SampleConfig = SampleConfig()
    prompt: str = "paper"  # a named template (see ferbench.llm.prompts) or the literal prompt text
    strategy: str = Field("label", description=(
        "Prompt strategy (ferbench.llm.strategies): 'label' (one class, the prompt above), 'rank' (a top_k "
        "ranking), 'reason_then_answer' (reasoning, then the class in <answer> tags), 'structured' (a JSON "
        "schema or a constrained choice, see structured_via)."))
    top_k: int = Field(5, ge=1, le=8, description="Length of the ranking the 'rank' strategy asks for.")
    structured_via: Literal["json_schema", "vllm", "vllm_guided"] = Field("json_schema", description=(
        "How 'structured' constrains the answer: 'json_schema' (OpenAI response_format), 'vllm' (vLLM's "
        "structured_outputs in the request body, vLLM >= 0.10.2), 'vllm_guided' (guided_choice / guided_json, "
        "vLLM before 0.12)."))
    images_per_request: int = Field(1, ge=1, le=MAX_IMAGES_PER_REQUEST, description=(
        "Images sent in one request, each labelled 'Image k (id ...)'; answers are matched by position and id. "
        "A request answered with the wrong count is asked again once, then split (20 -> 10 -> 5 -> 1)."))
    image_size: int = Field(48, ge=48, le=1024)
    concurrency: int = Field(4, ge=1, le=64)
    max_retries: int = Field(5, ge=0, le=20, description="Retries of 429/5xx/timeouts per image.")
    timeout: float = Field(120.0, gt=0, le=MAX_REQUEST_SECONDS, description=(
        "Total seconds one request may take, connection to last byte (a server that trickles bytes is cut off)."))
    batch_wait: float = Field(600.0, ge=0, le=MAX_WAIT_SECONDS, description=(
        "Seconds a run waits for a pending Batch API job before leaving it to a later run (which resumes it)."))
    batch_poll_interval: float = Field(15.0, gt=0, le=MAX_WAIT_SECONDS, description="Seconds between Batch API status checks.")
    # Sweeps (issue 33): how the image is sent, repeated answers, and the declared sweep (see schema/llm_sweep.py).
    color: Literal["gray", "rgb"] | None = Field(None, description=(
        "None: the images as the study reads them; gray: converted to grayscale; rgb: colour (refused on "
        "grayscale data, never faked)."))
    repeats: int = Field(1, ge=1, le=MAX_REPEATS, description=(
        "Answers per image (each its own request); above 1 the image is scored by the majority answer and the "
        "agreement rate is reported. Needs a temperature above 0."))
    sensitivity: LLMSensitivityConfig | None = None  # expanded only with --sensitivity

    @model_validator(mode="after")
    def _repeats_sample(self):
        if self.repeats > 1 and any(not ep.temperature for ep in self.endpoints):
            raise ValueError("repeats above 1 need every endpoint's temperature above 0 (at 0 the answers are "
                             "meant to be the same)")
        if self.repeats > 1 and any((ep.images_per_request or self.images_per_request) > 1 for ep in self.endpoints):
            raise ValueError("repeats above 1 ask one image per request: give images_per_request 1 (several images "
                             "per request are not repeated)")
        return self

    @model_validator(mode="after")
    def _strategy_and_batching(self):
        from ..llm.strategies import strategy

        strategy(self.strategy)  # an unknown name raises with the known ones
        for ep in self.endpoints:
            if ep.batch and (ep.images_per_request or self.images_per_request) > 1:
                raise ValueError(f"endpoint {ep.model!r}: batch: true sends one image per request; give "
                                 "images_per_request 1 for it")
        return self
