"""``manifest.json``, the description of one published version (docs/CONTRACTS.md section 3).

:class:`Manifest` is the precise form: training writes it (``training/export.py``,
``Manifest(...).model_dump_json``), and everything that reads a version reads it
through :func:`parse_manifest` / :func:`read_manifest`: the service's loader, the
quality gate, ``recsys compare`` and ``recsys update-catalog``.

* :data:`SCHEMA_VERSION` is 2. A manifest of another format (``schema_version`` 1,
  the untyped dict written before this module, or none) is refused with reason
  ``unsupported_format``, naming the version and saying to publish it again; no
  adapter reads the old format.
* Values are read strictly (a number written as a string is an error, not converted).
* Unknown fields are refused at the top level and in every section whose fields
  this contract names (``extra="forbid"``): a misspelt field is an error, never
  silently ignored. The sections another module owns are kept as they are, as
  JSON objects: ``feature_spec`` (``towers.spec.ModelSpec``), ``dataset``,
  ``training`` (the training config), ``metrics`` (a copy of ``metrics.json``),
  ``index.tuning``; ``index`` and ``index.params`` keep fields besides the ones
  named here (the builder's other parameters, a benchmark's annotations).
* An invalid manifest raises :class:`ManifestError` (``reason`` ``manifest_invalid``)
  whose message names the field and echoes the value, e.g.
  ``manifest.index.params.num_leaves must be greater than 0, got -3``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    ValidationError,
    model_serializer,
    model_validator,
)

from artifact.checksums import MANIFEST
from artifact.latest import is_version_name, shown

SCHEMA_VERSION: Final = 2
MAX_MANIFEST_BYTES = 64 << 20  # a manifest is a few hundred KiB at most (the tuning's frontier); never read a huge file whole


class ManifestError(Exception):
    """A manifest that cannot be used; ``reason``: ``manifest_missing``, ``manifest_invalid``,
    ``unsupported_format`` or ``version_mismatch`` (the service's LoadError reasons)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _version_name(value: str) -> str:
    if not is_version_name(value):
        raise ValueError("must be a version name (1 to 20 digits)")
    return value


VersionName = Annotated[str, AfterValidator(_version_name)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$")]
UnitFloat = Annotated[float, Field(ge=0.0, le=1.0)]
_STRICT = ConfigDict(extra="forbid", frozen=True, strict=True, ser_json_inf_nan="constants")


class InputSpec(BaseModel):
    """One input of a tower's SavedModel signature."""

    model_config = _STRICT

    name: Annotated[str, StringConstraints(min_length=1)]
    dtype: Literal["string", "float32"]
    kind: str | None = None  # the feature kind (towers.features.FeatureKind), e.g. "categorical", "history"
    default: str | float | None = None  # what a missing value becomes (None: "" or NaN)

    @model_validator(mode="after")
    def _default_matches_dtype(self) -> InputSpec:
        if self.default is None:
            return self
        if self.dtype == "float32" and isinstance(self.default, (str, bool)):
            raise ValueError(f"default of float32 input {self.name!r} must be a number, got {self.default!r:.40}")
        if self.dtype == "string" and not isinstance(self.default, str):
            raise ValueError(f"default of string input {self.name!r} must be a string, got {self.default!r:.40}")
        return self


class IndexParams(BaseModel):
    """The index's operating point; the builder's other parameters are kept as they are."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    num_leaves: Annotated[int, Field(gt=0)] | None = None
    num_leaves_to_search: Annotated[int, Field(gt=0)] | None = None
    reorder: Annotated[int, Field(gt=0)] | None = None  # approximate candidates re-scored exactly per query

    @model_serializer(mode="wrap")
    def _named_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A brute-force index has no tree: its unnamed parameters are left out, not written as null."""
        return {key: value for key, value in handler(self).items() if value is not None}


class IndexSection(BaseModel):
    """``index``: what training built and measured (``training.index.IndexInfo``). Fields besides
    those named here are kept as they are (a benchmark's annotations, e.g. ``benchmarks/former_index.py``'s ``rule``)."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True, ser_json_inf_nan="constants")

    kind: Literal["brute_force", "tree_ah"]
    params: IndexParams = IndexParams()
    build_seconds: Annotated[float, Field(ge=0.0)] = 0.0
    recall_at_10_vs_exact: UnitFloat | None = None
    recall_at_100_vs_exact: UnitFloat | None = None
    similar_recall_at_10_vs_exact: UnitFloat | None = None
    us_per_query: Annotated[float, Field(ge=0.0)] | None = None
    meets_target: bool = True
    tuning: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _tree_names_its_pool(self) -> IndexSection:
        if self.kind == "tree_ah" and self.params.reorder is None:
            raise ValueError("a tree_ah index must name params.reorder (the candidates re-scored exactly)")
        return self


class Manifest(BaseModel):
    """``manifest.json`` of one version (docs/CONTRACTS.md section 3)."""

    model_config = _STRICT

    schema_version: Literal[2] = SCHEMA_VERSION
    version: VersionName
    kind: Literal["training", "catalog_update"] | None = None  # None: not recorded (shown as null by /v1/model)
    parent_version: VersionName | None = None  # the version a catalog update was made from
    created_at: str  # ISO 8601, UTC
    embedding_dim: Annotated[int, Field(gt=0)]
    num_items: Annotated[int, Field(gt=0)]
    num_users: Annotated[int, Field(ge=0)]
    similarity: Literal["dot"] = "dot"
    query_inputs: Annotated[list[InputSpec], Field(min_length=1)]
    candidate_inputs: list[InputSpec]
    feature_spec: dict[str, Any]  # towers.spec.ModelSpec.model_dump(mode="json")
    dataset: dict[str, Any] | None = None
    training: dict[str, Any] | None = None
    index: IndexSection | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    libraries: dict[str, str] = Field(default_factory=dict)
    files: Annotated[dict[str, Sha256], Field(min_length=1)]  # every file but manifest.json -> sha256 hex

    def query_feature(self, name: str) -> dict[str, Any]:
        """The feature spec of query input ``name`` (``{}`` when the spec does not describe it)."""
        query = self.feature_spec.get("query")
        features = query.get("features") if isinstance(query, dict) else None
        for feature in features if isinstance(features, list) else []:
            if isinstance(feature, dict) and feature.get("name") == name:
                return feature
        return {}


def _field(loc: tuple[int | str, ...]) -> str:
    return "manifest" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)


def _phrase(message: str) -> str:
    """Pydantic's "Input should be ..." as "must be ..."; "Value error, ..." without its prefix."""
    prefixes = (
        ("Input should be ", "must be "),
        ("Value error, ", ""),
        ("String should ", "must "),
        ("List should ", "must "),
        ("Dictionary should ", "must "),
    )
    for prefix, replacement in prefixes:
        if message.startswith(prefix):
            return replacement + message[len(prefix) :]
    return message[:1].lower() + message[1:]


def describe_error(exc: ValidationError) -> str:
    """The first problem of a validation error as one sentence naming the field and the value."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    loc = tuple(part for part in first["loc"] if not (isinstance(part, str) and part.startswith("function-")))
    if first["type"] == "missing":
        return f"{_field(loc)} is missing{more}"
    if first["type"] == "extra_forbidden":
        return f"{_field(loc)} is not a field of this manifest format (schema_version {SCHEMA_VERSION}){more}"
    value = shown(repr(first.get("input")), 60)
    return f"{_field(loc)} {_phrase(str(first['msg']))}, got {value}{more}"


def parse_manifest(data: Any, version: str | None = None) -> Manifest:
    """The manifest in ``data`` (parsed JSON), validated; with ``version``, it must name that version.

    Refuses another format first (``unsupported_format``), then any invalid field (``manifest_invalid``),
    then a manifest of another version (``version_mismatch``)."""
    where = f"version {version}" if version is not None else "this version"
    if not isinstance(data, dict):
        raise ManifestError("manifest_invalid", f"manifest.json of {where} must be a JSON object, got {type(data).__name__}")
    found = data.get("schema_version")
    if found != SCHEMA_VERSION or isinstance(found, bool):
        raise ManifestError(
            "unsupported_format",
            f"{where} was published in another manifest format (schema_version {shown(repr(found), 40)}; this code reads "
            f"{SCHEMA_VERSION}); publish it again with this code (recsys train)",
        )
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError("manifest_invalid", f"{where}: {describe_error(exc)}") from exc
    if version is not None and manifest.version != version:
        raise ManifestError("version_mismatch", f"the manifest of {version} says version {manifest.version!r}")
    return manifest


def read_manifest(version_dir: Path, version: str | None = None) -> tuple[Manifest, dict[str, Any]]:
    """``<version_dir>/manifest.json`` validated, and the JSON object it holds (as written).

    ``version`` defaults to the folder's name."""
    path = Path(version_dir) / MANIFEST
    name = Path(version_dir).name if version is None else version
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError as exc:
        raise ManifestError("manifest_missing", f"version {name} has no manifest.json") from exc
    except OSError as exc:
        raise ManifestError("manifest_invalid", f"manifest.json of version {name} cannot be read: {exc}") from exc
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError("manifest_invalid", f"manifest.json of version {name} is over {MAX_MANIFEST_BYTES >> 20} MiB")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError("manifest_invalid", f"manifest.json of version {name} is not valid JSON: {exc}") from exc
    return parse_manifest(data, name), data
