"""Reading a suite file: YAML -> bounded node graph -> dict -> validated :class:`SuiteConfig`.

Every problem is reported at once, sorted by line, each with its key path. A suite may come from
someone else, so the file size, the expanded size of YAML aliases (the "billion laughs" bomb) and
the depth of ``include:`` chains are bounded, and include cycles are refused. An include names a
YAML file under the top suite's own folder; problems in an included file are quoted only if it
parsed as a suite (a mapping of suite keys with a name), otherwise counted (it may be any file).
"""
from __future__ import annotations

import copy
import io
import typing
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import SuiteError, unknown_name
from ..schema.suite import SuiteConfig
from ..schema.train import TrainConfig

MAX_FILE_BYTES = 1_000_000
MAX_NODES = 100_000  # YAML nodes after alias expansion
MAX_INCLUDE_DEPTH = 8


@dataclass(frozen=True)
class LoadedSuite:
    """A validated suite and the file it came from (relative paths in it resolve against ``dir``)."""
    config: SuiteConfig
    path: Path

    @property
    def dir(self) -> Path:
        return self.path.resolve().parent

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def studies(self):
        return self.config.studies


def _model_names() -> list[str]:
    from ..models.catalog import model_names  # a cached list: no torch

    return model_names()


# --- YAML with bounds and line numbers ----------------------------------------------------------------

def _expanded_size(root: yaml.Node) -> int:
    """Nodes after alias expansion, computed on the DAG without expanding it; raises on recursion."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in on_path:
            raise SuiteError("", ["a YAML alias refers to itself (recursive structure)"])
        on_path.add(key)
        if isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(v) for v in node.value)
        else:
            total = 1
        on_path.discard(key)
        sizes[key] = min(total, MAX_NODES + 1)  # saturate: the count only has to exceed the bound
        return sizes[key]

    return size(root)


def _line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """1-based line of the YAML node at pydantic ``loc`` (deepest node that exists)."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next(((k, v) for k, v in node.value if k.value == key), None)
            if nxt is None:
                break
            line, node = nxt[0].start_mark.line + 1, nxt[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            continue  # pydantic adds tags such as 'str' or 'list[str]' into loc
    return line


def _loc_text(loc: tuple) -> str:
    out = ""
    for k in loc:
        out += f"[{k}]" if isinstance(k, int) else (f".{k}" if out else str(k))
    return out or "(top level)"


def _model_at(cls: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic model class that validates the mapping at ``loc`` (for did-you-mean on keys)."""
    for key in loc:
        if isinstance(key, int):
            continue
        field = cls.model_fields.get(key)
        if field is None:
            return None if key not in ("train", "defaults") else TrainConfig
        nxt = _first_model(field.annotation)
        if nxt is None:
            return TrainConfig if key in ("train", "defaults") else None
        cls = nxt
    return cls


def _first_model(tp) -> type[BaseModel] | None:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    for arg in typing.get_args(tp):
        found = _first_model(arg)
        if found is not None:
            return found
    return None


def _unknown_key_message(root_cls: type[BaseModel], loc: tuple) -> str:
    key = loc[-1]
    owner = _model_at(root_cls, loc[:-1])
    return unknown_name("key", key, list(owner.model_fields) if owner is not None else [])


def _problem(root: yaml.Node, loc: tuple, msg: str) -> tuple[int, str]:
    line = _line_of(root, loc)
    return (line or 0, f"line {line}: {_loc_text(loc)}: {msg}")


def _train_problems(raw: dict, root: yaml.Node) -> list[tuple[int, str]]:
    """Validate every train block (suite defaults, study, experiment, profile) against TrainConfig."""
    # Only mappings: a block of the wrong type is already reported by the suite schema.
    def items(v, kind):
        return (v.items() if isinstance(v, dict) else ()) if kind is dict else \
            (enumerate(v) if isinstance(v, list) else ())

    blocks = [(("defaults",), raw.get("defaults") or {})]
    for i, st in items(raw.get("studies"), list):
        if isinstance(st, dict):
            blocks.append((("studies", i, "train"), st.get("train") or {}))
            for j, ex in items(st.get("experiments"), list):
                if isinstance(ex, dict):
                    blocks.append((("studies", i, "experiments", j, "train"), ex.get("train") or {}))
    for name, prof in items(raw.get("profiles"), dict):
        if isinstance(prof, dict):
            blocks.append((("profiles", name, "train"), prof.get("train") or {}))
    problems = []
    for loc, block in blocks:
        if not isinstance(block, dict):
            continue
        try:
            TrainConfig.model_validate({"epochs": 1, **block})
        except ValidationError as exc:
            for e in exc.errors():
                full = loc + tuple(e["loc"])
                msg = _unknown_key_message(TrainConfig, tuple(e["loc"])) if e["type"] == "extra_forbidden" \
                    else e["msg"].removeprefix("Value error, ")
                problems.append(_problem(root, full, msg))
    return problems


# PyYAML's wording of the mistakes people make in a suite, in plain words (matched on its 'problem').
_PLAIN = [("expected <block end>", "this line is indented differently from the lines before it: the keys of one "
           "mapping, and the items of one list, must start in the same column"),
          ("did not find expected key", "this line's indentation does not match the mapping it is in: its keys "
           "must start in the same column"),
          ("did not find expected '-'", "this line's indentation does not match the list it is in: its items "
           "must start with '-' in the same column"),
          ("mapping values are not allowed", "a ':' where no value can start: check this line's indentation, or "
           "quote a value that contains ': '"),
          ("could not find expected ':'", "a line without 'key: value' inside a mapping: a missing ':' or a "
           "wrongly indented line"),
          ("cannot start any token", "a tab or another character that cannot start YAML text here: indent with "
           "spaces only"),
          ("found undefined alias", "an alias (*name) with no anchor (&name) before it"),
          ("found unexpected end of stream", "a quote or bracket that is never closed")]


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """'line 6, column 4: <a plain sentence> (YAML: <PyYAML's words>)'."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    plain = next((text for key, text in _PLAIN if key in problem), "not valid YAML")
    return f"{where}{plain} (YAML: {problem})"


def _read_yaml(path: Path) -> tuple[dict, yaml.Node]:
    if not path.is_file():
        raise SuiteError(path, [f"suite file not found: {path}"])
    if path.stat().st_size > MAX_FILE_BYTES:
        raise SuiteError(path, [f"suite file is {path.stat().st_size:,} bytes; the limit is {MAX_FILE_BYTES:,}"])
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SuiteError(path, [f"not UTF-8 text: {exc}"]) from None
    stream = io.StringIO(text)
    stream.name = str(path)  # YAML errors then name the file, not '<unicode string>'
    try:
        root = yaml.compose(stream)
        if root is None:
            raise SuiteError(path, ["the file is empty; a suite needs at least 'name' and 'studies'"])
        n = _expanded_size(root)
        if n > MAX_NODES:
            raise SuiteError(path, [f"the YAML expands to more than {MAX_NODES:,} nodes (aliases repeated inside "
                                    "aliases?); refusing to load it"])
        stream = io.StringIO(text)
        stream.name = str(path)
        raw = yaml.safe_load(stream)  # same text, now known to be small once expanded
    except SuiteError as exc:
        raise SuiteError(path, exc.problems) from None
    except yaml.YAMLError as exc:
        raise SuiteError(path, [_yaml_problem(exc)]) from None
    except RecursionError:  # PyYAML composes recursively: '[[[[...' thousands deep
        raise SuiteError(path, ["the YAML is nested too deeply to be a suite; refusing to load it"]) from None
    except (ValueError, TypeError) as exc:  # e.g. an integer of 100,000 digits, an unhashable key
        raise SuiteError(path, [f"not a usable YAML value: {str(exc)[:200]}"]) from None
    if not isinstance(raw, dict):
        raise SuiteError(path, ["a suite must be a YAML mapping with at least 'name' and 'studies'"])
    # Top-level 'x-*' keys hold YAML anchors for reuse (as in docker-compose); they are not settings.
    return {k: v for k, v in raw.items() if not str(k).startswith("x-")}, root


def _include_target(path: Path, inc: str, root: Path) -> Path:
    """The file ``include: inc`` names: a .yaml/.yml file under ``root``, the top suite's own folder,
    symbolic links resolved; anything else is refused without reading it."""
    target = (path.parent / inc).resolve()
    if Path(inc).is_absolute() or not target.is_relative_to(root) or target.suffix.lower() not in (".yaml", ".yml"):
        raise SuiteError(path, [f"include {inc!r}: includes are .yaml/.yml suite files under the suite's own "
                                f"folder {root}; copy the file there"])
    return target


def _deep_merge(*dicts: dict) -> dict:
    out: dict = {}
    for d in dicts:
        for k, v in (d or {}).items():
            out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) \
                else copy.deepcopy(v)
    return out


def load_suite(path: str | Path, _chain: tuple[Path, ...] = ()) -> LoadedSuite:
    """Read and validate a suite file; raises SuiteError listing every problem with its line."""
    path = Path(path)
    where = " -> ".join(str(p) for p in (*_chain, path))
    if path.resolve() in {p.resolve() for p in _chain}:
        raise SuiteError(_chain[0], [f"include cycle: {where}"])
    if len(_chain) > MAX_INCLUDE_DEPTH:
        raise SuiteError(_chain[0], [f"includes nested deeper than {MAX_INCLUDE_DEPTH}: {where}"])
    raw, root = _read_yaml(path)
    problems: list[tuple[int, str]] = []
    suite = None
    try:
        suite = SuiteConfig.model_validate(raw, context={"models": _model_names()})
    except ValidationError as exc:
        for e in exc.errors():
            loc = tuple(e["loc"])
            msg = _unknown_key_message(SuiteConfig, loc) if e["type"] == "extra_forbidden" \
                else e["msg"].removeprefix("Value error, ")
            problems.append(_problem(root, loc, msg))
    problems += _train_problems(raw, root)
    if problems:
        err = SuiteError(path, [p for _, p in sorted(problems, key=lambda p: p[0])])
        # A mapping of suite keys with a name is a suite with mistakes: its problems may be quoted.
        err.parsed_as_suite = "name" in raw and set(map(str, raw)) <= set(SuiteConfig.model_fields)
        raise err
    root = (_chain[0] if _chain else path).resolve().parent
    for inc in suite.include:
        target = _include_target(path, inc, root)
        try:
            # An included suite's defaults and seeds travel with its studies.
            sub = load_suite(target, (*_chain, path)).config
        except SuiteError as exc:
            if exc.path == path or _chain:
                raise
            if getattr(exc, "parsed_as_suite", False):
                raise SuiteError(path, [f"in included suite {inc}: {p}" for p in exc.problems]) from None
            # Never quote a file that did not parse as a suite: it may be any YAML file (or a secret).
            raise SuiteError(path, [f"include {inc!r}: not a valid suite ({len(exc.problems)} problem(s)); "
                                    f"`ferbench validate {target}` lists them"]) from None
        for st in sub.studies:
            suite.studies.append(st.model_copy(update={"train": _deep_merge(sub.defaults, st.train),
                                                       "seeds": st.seeds or sub.seeds}))
    names = [s.name for s in suite.studies]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SuiteError(path, [f"study names must be unique across included suites; repeated: {', '.join(dup)}"])
    return LoadedSuite(suite, path)
