"""The table of LLM providers: how ferbench reaches a model behind an OpenAI-compatible API.

A provider says where its API root comes from when a suite gives no ``base_url``, whether it needs an
``api_version``, whether the OpenAI Batch API applies, which budget field its chat API takes by
default, and how to build the ``openai`` client. Adding one is one entry and one registration here
(or in its own module imported at the end of this one)::

    register_provider(Provider("gemini", endpoint_env="GEMINI_BASE_URL", client=_gemini_client))

Torch-free and openai-free on import: the suite schema validates provider names against this table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..registry import Table

if TYPE_CHECKING:
    import openai

# (api key, base URL or None, api_version or None, timeout, http client) -> client. The endpoint's
# fields are passed one by one: the suite schema validates against this table, so it is not imported here.
ClientFactory = Callable[[str, "str | None", "str | None", object, object], "openai.OpenAI"]


def _openai_client(api_key: str, base_url: str | None, api_version: str | None, timeout,
                   http_client) -> openai.OpenAI:
    import openai

    # base_url=None lets the client honour $OPENAI_BASE_URL, as users expect.
    return openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0, http_client=http_client)


def _azure_client(api_key: str, base_url: str | None, api_version: str | None, timeout,
                  http_client) -> openai.OpenAI:
    import openai

    return openai.AzureOpenAI(azure_endpoint=base_url, api_version=api_version, api_key=api_key,
                              timeout=timeout, max_retries=0, http_client=http_client)


@dataclass(frozen=True)
class Provider:
    name: str
    endpoint_env: str  # environment variable with the API root when the suite gives no base_url
    client: ClientFactory
    needs_api_version: bool = False  # an api-version query parameter (Azure)
    batch: bool = False  # OpenAI's Batch API (files + batches) is available
    official: bool = False  # the chat API takes max_completion_tokens even without a base URL that says so


_PROVIDERS: Table[Provider] = Table("LLM provider")


def register_provider(provider: Provider) -> None:
    _PROVIDERS.add(provider.name, provider)


def list_providers() -> list[str]:
    return _PROVIDERS.names()


def provider(name: str) -> Provider:
    return _PROVIDERS.get(name)


register_provider(Provider("openai", endpoint_env="OPENAI_BASE_URL", client=_openai_client, batch=True))
register_provider(Provider("azure", endpoint_env="AZURE_OPENAI_ENDPOINT", client=_azure_client,
                           needs_api_version=True, official=True))
