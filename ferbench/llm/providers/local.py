"""Servers that run an open vision model on your own hardware, each as its documentation describes it.

All four speak OpenAI's chat API at ``/v1``, take the image as a base64 ``data:`` URL in an ``image_url``
content part, and list what they serve at ``GET /v1/models``. They differ in their default address, in
whether a key is checked, in the budget field they read, and in the request fields they ignore (sending
those would only make the result claim a setting the model never saw). No token prices: a local
request costs nothing, so ferbench records wall time and GPU-seconds instead (see docs/vlm-servers.md).
"""
from __future__ import annotations

from .base import Provider, openai_client

VLLM_DOCS = ("https://docs.vllm.ai/en/latest/serving/openai_compatible_server/",
             "https://docs.vllm.ai/en/latest/features/structured_outputs/")
OLLAMA_DOCS = ("https://docs.ollama.com/api/openai-compatibility",
               "https://github.com/ollama/ollama/blob/main/openai/openai.go")
LLAMA_CPP_DOCS = ("https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md",)
LM_STUDIO_DOCS = ("https://lmstudio.ai/docs/developer/openai-compat/chat-completions",
                  "https://lmstudio.ai/docs/developer/openai-compat/structured-output")

LOCAL_SERVERS = (
    Provider(
        "vllm", title="vLLM", endpoint_env="VLLM_BASE_URL", client=openai_client, local=True,
        default_base_url="http://localhost:8000/v1", key_env="VLLM_API_KEY", placeholder_key="EMPTY",
        apis=("chat",), docs=VLLM_DOCS, lists_models=True,
        not_sent={"detail": "vLLM: 'image_url.detail parameter is not supported' (OpenAI-compatible server docs)"}),
    Provider(
        "ollama", title="Ollama", endpoint_env="OLLAMA_BASE_URL", client=openai_client, local=True,
        default_base_url="http://localhost:11434/v1", key_env="OLLAMA_API_KEY", placeholder_key="ollama",
        apis=("chat",), token_params=("max_tokens",), docs=OLLAMA_DOCS, lists_models=True,
        not_sent={"detail": "Ollama reads only image_url.url (openai/openai.go); detail is not a supported field"}),
    Provider(
        "llamacpp", title="llama.cpp (llama-server)", endpoint_env="LLAMA_CPP_BASE_URL", client=openai_client,
        local=True, default_base_url="http://127.0.0.1:9931/v1", key_env="LLAMA_API_KEY",
        placeholder_key="sk-no-key-required", apis=("chat",), token_params=("max_tokens",), docs=LLAMA_CPP_DOCS,
        lists_models=True, model_required=False,
        not_sent={"detail": "llama-server's README documents image_url.url only (remote URL, base64 or file)"}),
    Provider(
        "lmstudio", title="LM Studio", endpoint_env="LMSTUDIO_BASE_URL", client=openai_client, local=True,
        default_base_url="http://localhost:1234/v1", key_env="LM_API_TOKEN", placeholder_key="lm-studio",
        apis=("chat",), token_params=("max_tokens",), docs=LM_STUDIO_DOCS, lists_models=True,
        not_sent={"detail": "not among LM Studio's supported payload parameters",
                  "reasoning_effort": "not among LM Studio's supported payload parameters"}),
)

# vLLM constrains an answer to a list of words through this extra request field (the guided_choice field it
# replaced was removed in vLLM 0.12.0; see the structured-outputs page above). Other servers: response_format.
VLLM_CHOICE_FIELD = "structured_outputs"


def vllm_choice(labels: list[str]) -> dict:
    """The extra body that makes vLLM answer with exactly one of ``labels``."""
    return {VLLM_CHOICE_FIELD: {"choice": list(labels)}}
