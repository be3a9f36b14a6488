"""The ``llm:`` block of a study: endpoints, the stratified sample, prompt and request settings."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EndpointConfig(_Strict):
    model: str
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.0
    max_tokens: int = Field(16, gt=0)
    detail: Literal["low", "high", "auto"] = "low"
    price_input_per_1m: float | None = Field(None, ge=0)
    price_output_per_1m: float | None = Field(None, ge=0)
    label: str | None = None  # row name in tables; default the model name

    @field_validator("api_key_env")
    @classmethod
    def _env_name_not_key(cls, v):
        if v.startswith("sk-") or len(v) > 64:
            raise ValueError("api_key_env takes the NAME of an environment variable, never the key itself")
        return v


class SampleConfig(_Strict):
    split: Literal["test", "val", "PrivateTest", "PublicTest"] = "PrivateTest"
    per_class: int | None = Field(5, gt=0)  # None: the whole split
    seed: int = 0


class LLMConfig(_Strict):
    endpoints: list[EndpointConfig] = Field(min_length=1)
    sample: SampleConfig = SampleConfig()
    prompt: str = "paper"  # a named template (see ferbench.llm.prompts) or the literal prompt text
    image_size: int = Field(48, ge=48, le=1024)
    concurrency: int = Field(4, ge=1, le=64)
    max_retries: int = Field(5, ge=0)
    timeout: float = Field(60.0, gt=0)
