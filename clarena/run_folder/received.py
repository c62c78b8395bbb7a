"""The checks that make a run folder from someone else inert: reading it runs no code.

A run folder's `config.yaml` is written by clarena fully resolved, with one interpolation kept:
`${output_dir}`, so that the folder can move. Anything else in a received file is refused before
a component is built, with one line naming the key and the fix:

- **No resolvers.** `${oc.create:...}` builds a `_target_` node out of a string after any check of
  the raw file, `${oc.env:...}` reads the environment, `${oc.decode:...}` parses; none of them, nor
  any custom resolver, is evaluated. Plain references (`${output_dir}`, `${a.b}`) are resolved
  here, once, and the `_target_`s are checked on the result.
- **No YAML alias bombs.** Aliases are expanded when OmegaConf copies the tree: a document whose
  expansion exceeds `MAX_YAML_NODES` nodes is refused before it is built.
- **Only components.** Every `_target_` of the resolved config must be a class under
  `ALLOWED_TARGETS` (clarena's components, `torch.optim`, Lightning's loggers and callbacks).
- **Nothing written outside.** A path given to a logger or a callback must lie inside the run
  folder, and no symbolic link inside the folder is followed (`check_no_symlinks`).
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clarena.core.errors import ConfigError

MAX_YAML_NODES = 200_000
"""The most nodes a received YAML document may expand to (a run's config has about a thousand)."""

ALLOWED_TARGETS = (
    "clarena.cl_datasets.",
    "clarena.backbones.",
    "clarena.heads.",
    "clarena.cl_algorithms.",
    "clarena.run.loggers.",
    "clarena.run.callbacks.",
    "clarena.run.loop_settings.LoopSettings",
    "torch.optim.",
    "lightning.pytorch.loggers.",
    "lightning.pytorch.callbacks.",
    "lightning.pytorch.Trainer",
    "lightning.pytorch.trainer.trainer.Trainer",
)
"""Prefixes of the `_target_`s a run folder may name without `--trust-config` (classes only)."""

WRITING_GROUPS = ("logger", "callbacks", "trainer")
"""Top-level groups whose components write files: their paths must stay in the run folder."""


def _expanded_size(node: Any, memo: dict[int, int], limit: int) -> int:
    """The number of nodes `node` expands to with its aliases copied (stops counting past
    `limit`)."""
    import yaml

    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = limit + 1  # a node that contains itself expands without end
    size = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            size += _expanded_size(child, memo, limit)
            if size > limit:
                break
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            size += _expanded_size(k, memo, limit) + _expanded_size(v, memo, limit)
            if size > limit:
                break
    memo[key] = size
    return size


def read_yaml(path: Path) -> Any:
    """`yaml.safe_load` of `path`, refusing a document that expands to over `MAX_YAML_NODES`.

    Raises:
        ConfigError: Unreadable, not YAML, or too large once its aliases are expanded.
        OSError: The file cannot be read.
    """
    import yaml

    text = path.read_text(encoding="utf-8")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None and _expanded_size(node, {}, MAX_YAML_NODES) > MAX_YAML_NODES:
            raise ConfigError(
                f"{path} expands to over {MAX_YAML_NODES:,} values through YAML aliases (&/*), "
                "far more than a run config holds; it is refused unread: restore the file from a "
                "copy, or start a new run"
            )
        return None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()


def _resolvers_in(value: str) -> list[str]:
    """The names of the resolvers an OmegaConf string calls (`${name:...}`), nested ones too.

    Raises:
        ConfigError: The string is not a valid OmegaConf value.
    """
    from omegaconf import grammar_parser
    from omegaconf.errors import GrammarParseError
    from omegaconf.grammar.gen.OmegaConfGrammarParser import OmegaConfGrammarParser

    try:
        tree = grammar_parser.parse(value)
    except GrammarParseError as exc:
        raise ConfigError(f"cannot parse {value!r}: {exc}") from None
    found: list[str] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, OmegaConfGrammarParser.InterpolationResolverContext):
            found.append(node.resolverName().getText())
        stack.extend(getattr(node, "children", None) or [])
    return found


def _walk(node: Any, where: str = ""):
    """`(key path, value)` of every leaf of a plain tree of dicts and lists."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{where}[{i}]")
    else:
        yield where, node


def refuse_resolvers(data: dict[str, Any], source: Path) -> None:
    """Refuse any value of `data` that calls a resolver (`${oc.env:...}`, `${oc.create:...}`,
    custom ones); plain references such as `${output_dir}` pass.

    Raises:
        ConfigError: One line naming the key and the resolver.
    """
    for where, value in _walk(data):
        if not isinstance(value, str) or "${" not in value:
            continue
        try:
            names = _resolvers_in(value)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {where}: {exc}; restore the file") from None
        if names:
            raise ConfigError(
                f"{source} sets {where} through the resolver ${{{names[0]}:...}}, which a run "
                "folder never holds (it could read the environment or build objects); it is "
                "refused unread: restore the file, or start a new run from your own configs"
            )


def resolve_received(data: dict[str, Any], source: Path) -> dict[str, Any]:
    """`data` with its references resolved (after `refuse_resolvers`); a value that still reads
    as an interpolation afterwards (an escaped `\\${...}`) is refused, since it would be
    interpolated again when the config is used.

    Raises:
        ConfigError: A reference to a missing key, or a value that would interpolate again.
    """
    from omegaconf import OmegaConf

    try:
        plain = OmegaConf.to_container(OmegaConf.create(data), resolve=True)
    except Exception as exc:  # InterpolationKeyError and friends: a damaged file
        first = str(exc).splitlines()[0]
        raise ConfigError(f"{source} does not resolve ({first}); restore the file") from None
    assert isinstance(plain, dict)
    resolved: dict[str, Any] = {str(k): v for k, v in plain.items()}
    for where, value in _walk(resolved):
        if isinstance(value, str) and "${" in value:
            raise ConfigError(
                f"{source} sets {where} to {value!r}, which would be interpolated when the run "
                "uses it; a run folder never holds such a value: restore the file"
            )
    return resolved


def _targets(node: Any, where: str = "") -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        target = node.get("_target_")
        if target is not None:
            found.append((where or "<root>", str(target)))
        for key, value in node.items():
            found += _targets(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _targets(value, f"{where}[{i}]")
    return found


def import_target(path: str, where: str) -> Callable[..., Any]:
    """Import the class or function a `_target_` names, or raise a one-line `ConfigError`."""
    module_name, _, attr = path.rpartition(".")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        raise ConfigError(
            f"{where}._target_ {path!r} needs the Python module {missing!r}, which is not "
            f"installed: install it (for loggers: pip install 'clarena[loggers]') or pick another "
            f"{where.split('.')[0]}"
        ) from exc
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(
            f"{where}._target_ {path!r} cannot be imported ({exc}); fix the name"
        ) from exc
    return target


def check_targets(config: dict[str, Any], source: Path) -> None:
    """Refuse any `_target_` of `config` outside `ALLOWED_TARGETS` or that is not a class.

    Raises:
        ConfigError: One line naming the key, the target and `--trust-config`.
    """

    for where, target in _targets(config):
        allowed = target.startswith(ALLOWED_TARGETS)
        if allowed:
            try:
                allowed = inspect.isclass(import_target(target, where))
            except ConfigError:
                allowed = False
        if not allowed:
            raise ConfigError(
                f"{source} sets {where}._target_ to {target!r}, which is not one of clarena's "
                "components, a torch.optim class or a Lightning logger/callback; a run folder is "
                "data and must not run code: pass --trust-config only if you wrote this config"
            )


def _looks_like_path(value: str) -> bool:
    return value.startswith(("/", "~", ".", "file:")) or "/" in value or os.sep in value


def check_paths_inside(config: dict[str, Any], run_dir: Path, source: Path) -> None:
    """Refuse a path given to a logger, a callback or the trainer that leads out of `run_dir`.

    Raises:
        ConfigError: One line naming the key and the path.
    """
    root = Path(os.path.realpath(run_dir))
    for group in WRITING_GROUPS:
        for where, value in _walk(config.get(group) or {}, group):
            if not isinstance(value, str) or not _looks_like_path(value):
                continue
            text = value.removeprefix("file://").removeprefix("file:")
            path = Path(os.path.expanduser(text))
            resolved = Path(os.path.realpath(path if path.is_absolute() else root / path))
            if resolved != root and root not in resolved.parents:
                raise ConfigError(
                    f"{source} sets {where} to {value!r}, outside the run folder {run_dir}; a "
                    "run folder writes only into itself: restore the file, or pass "
                    "--trust-config only if you wrote this config"
                )


def check_no_symlinks(run_dir: Path) -> None:
    """Refuse a run folder holding a symbolic link (writes through it would land elsewhere).

    Raises:
        ConfigError: One line naming the link and its target.
    """
    for folder, dirs, files in os.walk(run_dir, followlinks=False):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            if path.is_symlink():
                raise ConfigError(
                    f"{path} is a symbolic link (to {os.readlink(path)}); a run folder is "
                    "self-contained and follows no links: replace the link by a copy of what it "
                    "points to, or remove it"
                )
