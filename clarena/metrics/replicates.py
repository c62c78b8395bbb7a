"""Which runs are replicates of one setting, and how to name a setting by what sets it apart.

Two runs are **replicates** when their resolved configs are equal except for the seed and the
paths: a study averages over replicates only, and never pools runs that differ in anything else
(a factor, a λc, an optimizer, a backbone, a trainer option). `setting_of` reduces a config to the
part that must be equal: its leaves (dotted keys, e.g. `cl_algorithm.distillation_factor`) without

- the seeds: every key named `seed` or ending in `_seed` (`cl_dataset.seed`, `buffer_seed`, …);
- the paths and names: `output_dir`, `data_root`, `resume`, the `paths` and `hydra` groups, every
  `save_dir`, `dirpath`, `default_root_dir` …, the `experiment_name` (it names the run's folder),
  and any text holding the run's own folder or equal to its experiment name (a logger's
  `tracking_uri: file:<output_dir>/mlruns`, `name: <experiment_name>`);
- the scenario (`scenario`, `cl_dataset.scenario`): a study's columns.

`differing_keys` finds the keys that tell apart two settings placed in one scenario, and
`setting_labels` names each setting by its values on them (`distillation_factor=0.5`), or by its
experiment name when more than `MAX_LABEL_KEYS` keys differ and the names tell the settings apart.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Setting = tuple[tuple[str, str], ...]
"""A config reduced by `setting_of`: sorted (dotted key, value as canonical JSON text) pairs."""

PATH_KEYS = frozenset(
    {
        "output_dir",
        "output_root",
        "data_root",
        "resume",
        "default_root_dir",
        "save_dir",
        "dirpath",
        "root_dir",
        "log_dir",
        "experiment_name",
    }
)
"""Leaf names that hold a path or the run's name, never a setting."""

IGNORED_GROUPS = frozenset({"paths", "hydra"})
"""Top-level groups left out whole."""

MAX_LABEL_KEYS = 3
"""Above this many differing keys a setting is named by its experiment name, where that tells the
settings apart."""


def _is_seed(name: str) -> bool:
    return name == "seed" or name.endswith("_seed")


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    else:
        out[prefix] = value


def setting_of(config: Mapping[str, Any] | None) -> Setting:
    """The part of a run's resolved config that replicates share (see the module docstring)."""
    config = config if isinstance(config, Mapping) else {}
    output_dir = config.get("output_dir")
    name = config.get("experiment_name")
    leaves: dict[str, Any] = {}
    for key, value in config.items():
        if str(key) not in IGNORED_GROUPS:
            _flatten(value, str(key), leaves)
    kept = []
    for key, value in leaves.items():
        last = key.rsplit(".", 1)[-1]
        if _is_seed(last) or last in PATH_KEYS or last == "scenario":
            continue
        if isinstance(value, str) and (
            (isinstance(output_dir, str) and output_dir and output_dir in value)
            or (isinstance(name, str) and value == name)
        ):
            continue
        kept.append((key, json.dumps(value, sort_keys=True, default=str)))
    return tuple(sorted(kept))


def differing_keys(settings_per_scenario: Iterable[Sequence[Setting]]) -> list[str]:
    """The keys whose values differ between two settings of one scenario (a key that one
    setting lacks differs too), sorted; the settings of different scenarios are not compared."""
    keys: set[str] = set()
    for settings in settings_per_scenario:
        maps = [dict(s) for s in settings]
        for key in set().union(*maps) if maps else ():
            if len({m.get(key) for m in maps}) > 1:
                keys.add(key)
    return sorted(keys)


def short_names(keys: Sequence[str]) -> dict[str, str]:
    """Each dotted key's shortest tail that no other key of `keys` ends with
    (`cl_algorithm.distillation_factor` → `distillation_factor`)."""
    names = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            tail = ".".join(parts[-n:])
            if not any(other != key and ("." + other).endswith("." + tail) for other in keys):
                break
        names[key] = tail
    return names


def _shown(value: str | None) -> str:
    if value is None:
        return "unset"
    decoded = json.loads(value)
    return decoded if isinstance(decoded, str) else value


def setting_labels(
    settings: Sequence[Setting], keys: Sequence[str], names: Sequence[set[str]]
) -> list[str]:
    """A label per setting: `key=value, …` over `keys` (empty when there is none), or the
    experiment name when more than `MAX_LABEL_KEYS` keys differ and every setting has one name of
    its own (`names[i]`: the experiment names of setting i's runs)."""
    if not keys:
        return ["" for _ in settings]
    own = [next(iter(n)) if len(n) == 1 else None for n in names]
    if len(keys) > MAX_LABEL_KEYS and None not in own and len(set(own)) == len(own):
        return [str(name) for name in own]
    short = short_names(keys)
    return [", ".join(f"{short[k]}={_shown(dict(s).get(k))}" for k in keys) for s in settings]
