"""The one typed YAML configuration document (SPEC §3) and its loading rules.

Sections: data, features, tasks, model, training, evaluation, export, runner. Every field
has a default and a docstring (`mtlrec config schema`); unknown keys and wrong types are
rejected with one line that names the key and the valid choices.
"""

from __future__ import annotations

import copy
import hashlib
import json
import pathlib
import types
import typing
from importlib import resources
from typing import Any, Literal

import pydantic
import yaml

from mtlrec import presets
from mtlrec.datasets.config import GenerateConfig
from mtlrec.deploy.config import ExportConfig
from mtlrec.evaluation.config import BlessConfig, EvaluateConfig, EvaluationConfig
from mtlrec.features.config import ConfigSection, FeaturesConfig
from mtlrec.features.declarations import LABELS
from mtlrec.features.schema import DATA_DESCRIPTION
from mtlrec.models.config import DEFAULT_TASKS, ModelConfig, TaskConfig, TrainingConfig
from mtlrec.models.tasks import validate_tasks
from mtlrec.pipeline import config as pipeline_config
from mtlrec.pipeline.config import JobConfig


class ConfigError(ValueError):
    """A configuration problem, phrased as one line for the user."""


class DataConfig(pipeline_config.DataConfig):
    """Input logs, labels (the join) and the time split (SPEC §4, §5, §11)."""

    raw_dir: str | None = None
    """Directory of raw logs (SPEC §4); null = generate the synthetic data set in the workdir."""
    generate: GenerateConfig = GenerateConfig()
    """Synthetic data set used when raw_dir is null."""


class RunnerConfig(ConfigSection):
    """Where the run lives and how the engines run it (SPEC §10)."""

    workdir: str = "mtlrec-work"
    """Directory of runs, the latest manifest, and by default the serving exports."""
    beam_args: tuple[str, ...] = (
        "--runner=FnApiRunner",
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=0",
    )
    """Beam pipeline options passed unchanged (e.g. --runner=DataflowRunner --project=...)."""
    log_format: Literal["text", "json"] = "text"
    """text: progress for people; json: one JSON object per line for schedulers."""


class Config(ConfigSection):
    """The whole mtlrec configuration."""

    data: DataConfig = DataConfig()
    """Input logs, the join and the split."""
    features: FeaturesConfig = FeaturesConfig()
    """Feature transformation."""
    tasks: tuple[TaskConfig, ...] = DEFAULT_TASKS
    """The tasks of the multi-task model."""
    model: ModelConfig = ModelConfig()
    """Model architecture."""
    training: TrainingConfig = TrainingConfig()
    """Optimisation."""
    evaluation: EvaluationConfig = EvaluationConfig()
    """Evaluation and blessing."""
    export: ExportConfig = ExportConfig()
    """Export for TF Serving."""
    runner: RunnerConfig = RunnerConfig()
    """Runs and engines."""

    @pydantic.model_validator(mode="after")
    def _cross_section_names(self) -> Config:
        validate_tasks(self.tasks)
        names = [t.name for t in self.tasks]
        for t in self.tasks:
            if t.label is not None and t.label not in LABELS:
                raise ValueError(
                    f"tasks.{t.name}.label: unknown label {t.label!r}; valid: {sorted(LABELS)}"
                )
        _check_task_keys("export.score_weights", self.export.score_weights, names)
        _check_task_keys("evaluation.primary_metrics", self.evaluation.primary_metrics, names)
        for field in ("min_metrics", "max_metrics"):
            gated = {key.split(".", 1)[0]: v for key, v in getattr(self.evaluation, field).items()}
            _check_task_keys(f"evaluation.{field}", gated, names)
        return self

    def job_config(self, now_ms: int | None = None) -> JobConfig:
        """The sections the validate and preprocess Beam jobs read; `now_ms` is the run's
        wall clock (the default `data.max_ts` bound)."""
        labels = tuple(t.label for t in self.tasks if t.label is not None)
        return JobConfig(self.data, self.features, labels, self.runner.beam_args, now_ms)

    def evaluate_config(self) -> EvaluateConfig:
        """The sections the evaluate step reads."""
        return EvaluateConfig(self.tasks, self.evaluation, self.features, self.model, self.training)

    def bless_config(self) -> BlessConfig:
        """The sections the bless step reads."""
        return BlessConfig(self.tasks, self.evaluation, self.runner.workdir)

    def task(self, name: str) -> TaskConfig:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"no task {name!r}; tasks: {[t.name for t in self.tasks]}")

    def sha256(self) -> str:
        """Hash of the effective configuration, stable across key order."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def _check_task_keys(where: str, mapping: dict[str, Any], task_names: list[str]) -> None:
    unknown = sorted(set(mapping) - set(task_names))
    if unknown:
        raise ValueError(f"{where}: unknown task(s) {unknown}; tasks: {task_names}")


PRESETS = ("clickwatch", "movielens", "synthetic")
"""The presets shipped in `mtlrec.presets`: one YAML document per kind of data."""


def preset_document(name: str) -> dict[str, Any]:
    """The configuration document of the preset `name`.

    Raises:
      ConfigError: no such preset (the message lists the valid ones).
    """
    if name not in PRESETS:
        raise ConfigError(f"--preset {name!r}: no such preset; valid: {', '.join(PRESETS)}")
    return yaml.safe_load(resources.files(presets).joinpath(f"{name}.yaml").read_text())


def data_preset(raw_dir: str | pathlib.Path | None) -> str | None:
    """The preset a raw directory names in its `DATA_DESCRIPTION` file, if any."""
    if raw_dir is None:
        return None
    path = pathlib.Path(raw_dir) / DATA_DESCRIPTION
    if not path.is_file():
        return None
    try:
        described = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: not a readable data description ({e})") from None
    preset = described.get("preset") if isinstance(described, dict) else None
    if preset is not None and not isinstance(preset, str):
        raise ConfigError(f"{path}: preset must be a name; valid: {', '.join(PRESETS)}")
    return preset


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`, section by section (a list, e.g. tasks, is replaced whole)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def load_config(
    path: str | pathlib.Path | None = None,
    overrides: typing.Sequence[str] = (),
    preset: str | None = None,
) -> Config:
    """The preset (if any), the YAML document at `path` over it, then `key=value` overrides.

    Raises:
      ConfigError: unknown preset, unreadable file, unknown key, wrong type or bad override,
        in one line.
    """
    return validate(config_document(path, overrides, preset))


def config_document(
    path: str | pathlib.Path | None = None,
    overrides: typing.Sequence[str] = (),
    preset: str | None = None,
) -> dict[str, Any]:
    """The document `load_config` validates: what the user wrote, defaults left out."""
    document: dict[str, Any] = {}
    if path is not None:
        try:
            document = yaml.safe_load(pathlib.Path(path).read_text()) or {}
        except OSError as e:
            raise ConfigError(f"config file {path}: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {path}: not valid YAML ({e.problem})") from None
        if not isinstance(document, dict):
            raise ConfigError(f"config file {path}: the top level must be a mapping of sections")
    if preset is not None:
        document = _merged(preset_document(preset), document)
    for override in overrides:
        _apply_override(document, override)
    return document


def with_overrides(document: dict[str, Any], overrides: typing.Sequence[str]) -> dict[str, Any]:
    """A copy of `document` with `key=value` overrides applied (as `--set` applies them)."""
    out = copy.deepcopy(document)
    for override in overrides:
        _apply_override(out, override)
    return out


def validate(document: dict[str, Any]) -> Config:
    try:
        return Config.model_validate(document)
    except pydantic.ValidationError as e:
        raise ConfigError(_one_line(e, document)) from None


def _apply_override(document: dict[str, Any], override: str) -> None:
    key, sep, raw = override.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {override!r}: expected section.key=value")
    try:
        value = yaml.safe_load(raw) if raw else None
    except ValueError:
        # YAML reads 2026-13-01 as a date and fails on the month: the field's own check
        # names the key and the format.
        value = raw
    parts = key.split(".")
    node: Any = document
    for i, part in enumerate(parts[:-1]):
        if part == "tasks":
            node = node.setdefault("tasks", [t.model_dump() for t in DEFAULT_TASKS])
            continue
        if isinstance(node, list):
            matches = [t for t in node if isinstance(t, dict) and t.get("name") == part]
            if not matches:
                valid = [t.get("name") for t in node if isinstance(t, dict)]
                raise ConfigError(f"--set {key}: no task {part!r}; tasks: {valid}")
            node = matches[0]
            continue
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {'.'.join(parts[: i + 1])} is not a section")
        node = child
    node[parts[-1]] = value


def _one_line(error: pydantic.ValidationError, document: dict[str, Any]) -> str:
    first = error.errors()[0]
    loc = _readable_loc(first["loc"], document)
    if first["type"] == "extra_forbidden":
        model = _model_at(first["loc"][:-1])
        valid = ", ".join(model.model_fields) if model else ""
        return f"config error: unknown key '{loc}'; valid keys: {valid}"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] in ("value_error", "assertion_error") and loc == "":
        return f"config error: {message}"
    got = first.get("input")
    shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
    return f"config error: {loc}: {message}{shown}"


def _readable_loc(loc: tuple[Any, ...], document: dict[str, Any]) -> str:
    parts: list[str] = []
    node: Any = document
    for part in loc:
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            node = node[part]
            parts.append(str(node.get("name", part)) if isinstance(node, dict) else str(part))
            continue
        if isinstance(part, str) and part in ("function-after",) or part == "tagged-union":
            continue
        parts.append(str(part))
        node = node.get(part) if isinstance(node, dict) else None
    return ".".join(parts)


def _model_at(loc: tuple[Any, ...]) -> type[pydantic.BaseModel] | None:
    model: type[pydantic.BaseModel] = Config
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        inner = _section_type(field.annotation)
        if inner is None:
            return None
        model = inner
    return model


def _section_type(annotation: Any) -> type[pydantic.BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _section_type(arg)
        if found is not None:
            return found
    return None


def schema_lines(model: type[pydantic.BaseModel] = Config, prefix: str = "") -> list[str]:
    """One line per field: dotted key, type, default and meaning (`mtlrec config schema`)."""
    lines: list[str] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        inner = _section_type(field.annotation)
        description = field.description or ""
        if inner is not None and not _is_sequence(field.annotation):
            lines.append(f"{key}:  # {description}")
            lines.extend(schema_lines(inner, prefix=f"{key}."))
            continue
        shown = "required" if field.is_required() else _plain(field.get_default())
        lines.append(f"{key}: {_type_name(field.annotation)} = {shown}  # {description}")
        if inner is not None:
            lines.extend(schema_lines(inner, prefix=f"{key}[]."))
    return lines


def _is_sequence(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (tuple, list)


def _plain(value: Any) -> str:
    if isinstance(value, pydantic.BaseModel):
        value = value.model_dump(mode="json")
    elif isinstance(value, tuple) and value and isinstance(value[0], pydantic.BaseModel):
        value = [v.model_dump(mode="json", exclude_defaults=True) for v in value]
    return json.dumps(value, default=list)


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation) if a is not Ellipsis)
        return f"{origin.__name__}[{args}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def dump_yaml(config: Config) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
