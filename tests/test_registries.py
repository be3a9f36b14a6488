"""The extension tables: a split kind, a data source and an LLM provider are each one registration,
and the suite schema, make_split and load_data read the tables (no list to update elsewhere)."""
from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from ferbench.data import load_data, registry
from ferbench.data import splits as sp
from ferbench.errors import DataError
from ferbench.llm import providers
from ferbench.schema.llm import EndpointConfig
from ferbench.schema.suite import SplitConfig


@pytest.fixture
def extra_kind(monkeypatch):
    monkeypatch.setattr(sp, "_KINDS", sp._KINDS.copy())

    @sp.register_split_kind("public_only", doc="PublicTest as everything (a toy)", no_test=True)
    def _public(data, p):
        pub = data.subset(data.where_usage("PublicTest"))
        return sp.Partition(pub, None, None, "public only")
    return "public_only"


def test_a_registered_split_kind_is_accepted_by_the_schema_and_built(extra_kind):
    cfg = SplitConfig(kind=extra_kind, test="none")  # the schema reads the kind's flags
    assert cfg.kind == extra_kind
    data = load_data("synthetic:300")
    s = sp.make_split(data, extra_kind, test="none", eval_per_class=2)
    assert set(s.train.usage) == {"PublicTest"} and s.test is None and s.description == "public only"


def test_an_unknown_split_kind_names_the_registered_ones():
    with pytest.raises(ValidationError, match="unknown split kind 'oficial'. Did you mean 'official'"):
        SplitConfig(kind="oficial")
    with pytest.raises(DataError, match="unknown split kind"):
        sp.make_split(load_data("synthetic:70"), "nope")


def test_split_kind_flags_drive_the_schema_checks():
    with pytest.raises(ValidationError, match="only possible with kind: pooled, not holdout"):
        SplitConfig(kind="holdout", test="none")
    with pytest.raises(ValidationError, match="only possible with kind: kaggle, manifest, not official"):
        SplitConfig(kind="official", val_fraction=None)


def test_a_registered_data_source_reads_its_prefix(monkeypatch):
    monkeypatch.setattr(registry, "_SOURCES", registry._SOURCES.copy())
    base = load_data("synthetic:70")
    registry.register_source("mirror", lambda spec, **kw: base, prefix="mirror:")
    got = load_data("mirror:anything")
    assert got is base
    with pytest.raises(ValueError, match="exactly one of"):
        registry.register_source("bad", lambda spec, **kw: base)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_source("mirror", lambda spec, **kw: base, prefix="m2:")


def test_a_local_layout_is_found_by_its_matcher(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "_SOURCES", registry._SOURCES.copy())
    marker = tmp_path / "faces.npz"
    marker.write_bytes(b"x")
    seen = []
    registry.register_source("npz", lambda spec, **kw: seen.append(spec) or load_data("synthetic:77"),
                             matches=lambda p: p.suffix == ".npz")
    d = load_data(str(marker), use_cache=False)
    assert seen == [str(marker)] and len(d) == len(load_data("synthetic:77")) and np.all(d.labels >= 0)


def test_providers_table_drives_endpoint_checks(monkeypatch):
    with pytest.raises(ValidationError, match="unknown LLM provider 'azur'. Did you mean 'azure'"):
        EndpointConfig(model="m", provider="azur")
    with pytest.raises(ValidationError, match="needs api_version"):
        EndpointConfig(model="m", provider="azure")
    with pytest.raises(ValidationError, match="implemented for OpenAI's Batch API only"):
        EndpointConfig(model="m", provider="azure", api_version="2025-01-01", batch=True)
    monkeypatch.setattr(providers, "_PROVIDERS", providers._PROVIDERS.copy())
    providers.register_provider(providers.Provider("local", endpoint_env="LOCAL_BASE_URL",
                                                   client=providers._openai_client, batch=True))
    assert EndpointConfig(model="m", provider="local", batch=True).provider == "local"
