"""Warm start: a new model begins from an earlier model's weights, vocabulary rows by id.

Daily runs see new users and items and lose some: each run's tf.Transform vocabularies
differ, so an embedding row index means another id in each. Rows of every vocabulary-keyed
table (the id and categorical embeddings, the per-id biases) are carried over by token: a
token in both vocabularies takes its old row, a new token keeps its fresh initialisation, a
token that left the vocabulary is dropped (serving then hashes it into an OOV bucket). The
OOV bucket rows are carried when the bucket count is unchanged (a token hashes to the same
bucket). Every other variable is copied when its attribute path and shape match, and otherwise keeps
its fresh value; the report says which. The optimizer starts fresh (as TFX's warm-starting
Trainer does).
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from mtlrec.models.model import MultiTaskModel, load_model


@dataclasses.dataclass(frozen=True)
class Source:
    """The model to start from: its `model/` directory and its run's tf.Transform output."""

    model_dir: pathlib.Path
    tft_dir: pathlib.Path


def row_mapping(old: list[bytes], new: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """(new rows, old rows) of the tokens in both vocabularies, in new-row order."""
    position = {token: row for row, token in enumerate(old)}
    pairs = [(row, position[token]) for row, token in enumerate(new) if token in position]
    if not pairs:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    new_rows, old_rows = zip(*pairs, strict=True)
    return np.array(new_rows, np.int64), np.array(old_rows, np.int64)


def carry_rows(
    fresh: np.ndarray,
    old: np.ndarray,
    mapping: tuple[np.ndarray, np.ndarray],
    vocab: tuple[int, int],
) -> np.ndarray:
    """`fresh` with the mapped rows (and the OOV rows, when their count is unchanged) of `old`.

    `vocab` = (old vocabulary size, new vocabulary size); rows past them are OOV buckets.
    """
    out = fresh.copy()
    new_rows, old_rows = mapping
    out[new_rows] = old[old_rows]
    old_vocab, new_vocab = vocab
    if old.shape[0] - old_vocab == fresh.shape[0] - new_vocab:
        out[new_vocab:] = old[old_vocab:]
    return out


def variable_paths(model: tf.Module) -> dict[str, tf.Variable]:
    """Each variable of `model` under its attribute path (`query_tower.embeddings.user_id.
    embeddings`): stable across processes and runs, unlike Keras's uniquified layer names.
    A variable reachable by several paths takes the one with the fewest private parts, then
    the shortest, then the first in order."""
    paths: dict[int, list[str]] = {}
    variables: dict[int, tf.Variable] = {}
    for path, variable in model._flatten(  # noqa: SLF001 - tf.Module's own traversal
        predicate=lambda v: isinstance(v, tf.Variable), with_path=True
    ):
        name = ".".join(map(str, path))
        paths.setdefault(id(variable), []).append(name)
        variables[id(variable)] = variable

    def rank(name: str) -> tuple[int, int, str]:
        return (sum(part.startswith("_") for part in name.split(".")), len(name), name)

    return {min(names, key=rank): variables[key] for key, names in paths.items()}


def _vocabularies(tft_dir: pathlib.Path, names: set[str]) -> dict[str, list[bytes]]:
    output = tft.TFTransformOutput(str(tft_dir))
    return {
        name: [
            t if isinstance(t, bytes) else str(t).encode() for t in output.vocabulary_by_name(name)
        ]
        for name in names
    }


def warm_start(model: MultiTaskModel, source: Source, tft_dir: pathlib.Path) -> dict:
    """Initialises `model` (built, untrained, on the vocabularies of `tft_dir`) from `source`;
    returns the report: source, variables copied / kept fresh, rows carried per vocabulary."""
    previous = load_model(source.model_dir, None)
    keyed = {id(v): name for name, v in model.vocabulary_tables()}
    names = set(keyed.values())
    old_vocab, new_vocab = _vocabularies(source.tft_dir, names), _vocabularies(tft_dir, names)
    mappings = {n: row_mapping(old_vocab[n], new_vocab[n]) for n in names}
    before = variable_paths(previous)
    copied, fresh = [], []
    for path, variable in variable_paths(model).items():
        old = before.get(path)
        vocab = keyed.get(id(variable))
        if old is not None and vocab is not None and old.shape[1:] == variable.shape[1:]:
            sizes = (len(old_vocab[vocab]), len(new_vocab[vocab]))
            variable.assign(carry_rows(variable.numpy(), old.numpy(), mappings[vocab], sizes))
            copied.append(path)
        elif old is not None and vocab is None and old.shape == variable.shape:
            variable.assign(old)
            copied.append(path)
        else:
            fresh.append(path)
    rows = {
        name: {
            "carried": int(len(mappings[name][0])),
            "new": len(new_vocab[name]) - int(len(mappings[name][0])),
            "dropped": len(old_vocab[name]) - int(len(mappings[name][0])),
        }
        for name in sorted(names)
    }
    return {
        "source": str(source.model_dir),
        "variables_copied": len(copied),
        "variables_fresh": fresh,
        "rows": rows,
    }
