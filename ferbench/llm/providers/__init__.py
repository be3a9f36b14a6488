"""The table of LLM providers: how ferbench reaches a model behind an OpenAI-compatible API.

A provider says where its API root comes from when a suite gives no ``base_url``, whether it needs an
``api_version``, whether the OpenAI Batch API applies, which budget field its chat API takes by
default, and how to build the ``openai`` client; a local server (:mod:`.local`: vLLM, Ollama, llama.cpp,
LM Studio) also says its default address, its key, and the request fields it ignores. Adding one is one
entry and one registration (:class:`~.base.Provider` is defined in :mod:`.base`)::

    register_provider(Provider("gemini", endpoint_env="GEMINI_BASE_URL", client=openai_client))

Torch-free and openai-free on import: the suite schema validates provider names against this table.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ...registry import Table
from .base import ClientFactory, Provider, openai_client
from .local import LOCAL_SERVERS

if TYPE_CHECKING:
    import openai

__all__ = ["ClientFactory", "Provider", "list_providers", "provider", "register_provider"]
_openai_client = openai_client  # the name tests and extensions used before the package split


def _azure_client(api_key: str, base_url: str | None, api_version: str | None, timeout,
                  http_client) -> openai.OpenAI:
    import openai

    return openai.AzureOpenAI(azure_endpoint=base_url, api_version=api_version, api_key=api_key,
                              timeout=timeout, max_retries=0, http_client=http_client)


_PROVIDERS: Table[Provider] = Table("LLM provider")


def register_provider(provider: Provider) -> None:
    _PROVIDERS.add(provider.name, provider)


def list_providers() -> list[str]:
    return _PROVIDERS.names()


def provider(name: str) -> Provider:
    return _PROVIDERS.get(name)


register_provider(Provider("openai", endpoint_env="OPENAI_BASE_URL", client=openai_client, batch=True))
register_provider(Provider("azure", endpoint_env="AZURE_OPENAI_ENDPOINT", client=_azure_client,
                           needs_api_version=True, official=True))
for _server in LOCAL_SERVERS:
    register_provider(_server)
