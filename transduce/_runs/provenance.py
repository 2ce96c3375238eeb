"""What a run was made from: which plugin distribution provided each component, and the data files.

A run records 'family/name' -> 'distribution version' in components.json (and
in its last checkpoint). When the run is reopened on a machine that lacks a
plugin, the error names the distribution and version to install instead of
only saying that a name is unknown.

It also records, in data-files.json, the size and SHA-256 of every file its
data spec names (`data_files`): a data source re-reads and re-splits its files
whenever a run is reopened, so a file edited after training would silently give
other splits. Resuming and evaluating a split check the record first.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transduce._plugins import positions
from transduce._plugins.contracts import FAMILIES
from transduce._runs.rundir import RunDir, sha256_of
from transduce.errors import RunError

if TYPE_CHECKING:
    from transduce._plugins.registry import Registry

#: The option that accepts changed data files, named in the refusal.
ACCEPT_CHANGED_DATA = "--accept-changed-data"


def components_used(recipe: dict[str, Any], registry: Registry) -> dict[str, str]:
    """'family/name' -> 'distribution version' for every component a resolved recipe names (nested ones too)."""
    out: dict[str, str] = {}
    for family, spec, _ in positions.specs(recipe, registry):
        info = registry.get(family, spec["name"])
        if info is not None:
            out[f"{family}/{spec['name']}"] = f"{info.provider.distribution} {info.provider.version}"
    return out


def missing_plugins(recorded: dict[str, str], registry: Registry) -> dict[str, list[str]]:
    """'distribution version' -> the recorded components ('family/name') that the registry lacks."""
    missing: dict[str, list[str]] = {}
    for component, provider in recorded.items():
        family, _, name = component.partition("/")
        if family not in FAMILIES:  # not a component: a damaged record names no plugin to install
            continue
        if registry.get(family, name) is None:
            missing.setdefault(provider, []).append(component)
    return missing


def require_plugins(run: RunDir, registry: Registry) -> None:
    """Raise RunError naming the distributions to install when a component the run used is not installed."""
    missing = missing_plugins(run.saved_components(), registry)
    if missing:
        raise RunError(missing_message(run, missing))


def missing_message(run: RunDir, missing: dict[str, list[str]]) -> str:
    lines = [f"{run.path} was trained with plugins that are not available here:"]
    installs = []
    for provider, components in missing.items():
        distribution, _, version = provider.partition(" ")
        installed = _installed_version(distribution)
        what = ", ".join(components)
        if installed is None:
            lines.append(f"  {what}: from {distribution} {version}, which is not installed")
        else:
            lines.append(
                f"  {what}: from {distribution} {version}; the installed {distribution} {installed} "
                "does not provide it (or failed to load: see `transduce plugins`)"
            )
        installs.append(f"'{distribution}=={version}'" if version else f"'{distribution}'")
    lines.append(f"install them with: pip install {' '.join(installs)}")
    return "\n".join(lines)


def _installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


# --- the data files a run's splits were made from -------------------------------------------


def data_files(recipe: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """'data.KEY' -> {path, size, sha256} for every value of the data spec that names an existing file.

    A value naming a directory (e.g. `parallel`'s path) contributes the files in it whose stem is
    another value of the spec (train.de, val.en): the files such a source reads, not the rest of the folder.
    """
    spec = recipe["data"]
    texts = {value for value in spec.values() if isinstance(value, str)}
    found: dict[str, Path] = {}
    for key, value in spec.items():
        if key != "name" and isinstance(value, str) and value:
            try:
                found.update(_named_files(f"data.{key}", Path(value).expanduser(), texts))
            except (OSError, ValueError, RuntimeError):  # not a path at all (NUL, too long, no home): no file
                continue
    return {key: _described(path) for key, path in found.items()}


def _named_files(key: str, path: Path, stems: set[str]) -> dict[str, Path]:
    if path.is_file():
        return {key: path}
    if not path.is_dir():
        return {}
    return {f"{key}/{f.name}": f for f in sorted(path.iterdir()) if f.name.rsplit(".", 1)[0] in stems and f.is_file()}


def _described(path: Path) -> dict[str, Any]:
    return {"path": str(path.resolve()), "size": path.stat().st_size, "sha256": sha256_of(path)}


def record_data_files(run: RunDir, recipe: dict[str, Any]) -> None:
    """Write data-files.json: what the splits of a run starting now are made from."""
    from transduce._runs.checkpoint import write_text_atomic  # noqa: PLC0415 - torch only when a run is written

    write_text_atomic(run.data_files, json.dumps(data_files(recipe), indent=2, sort_keys=True) + "\n")


def changed_data_files(run: RunDir, recipe: dict[str, Any]) -> list[str]:
    """A line per recorded data file whose content differs now (a file now missing is the data source's error).
    An older run without a record, or an unreadable record, has none."""
    try:
        recorded = json.loads(run.data_files.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return []
    if not isinstance(recorded, dict):
        return []
    now = data_files(recipe)
    lines = []
    for key, then in sorted(recorded.items()):
        current = now.get(key)
        if not isinstance(then, dict) or current is None or current["sha256"] == then.get("sha256"):
            continue
        was = f"{then.get('size', '?'):,} bytes" if isinstance(then.get("size"), int) else "?"
        where = "" if current["path"] == then.get("path") else f" (the run was trained on {then.get('path')})"
        lines.append(f"{current['path']} ({key}){where}: {was} then, {current['size']:,} bytes and another SHA-256 now")
    return lines


def check_data_files(run: RunDir, recipe: dict[str, Any], doing: str, *, accept: bool = False) -> list[str]:
    """Refuse `doing` (e.g. 'continuing the run') when a data file changed since the run's splits were made;
    with `accept`, return the lines as notes instead."""
    changed = changed_data_files(run, recipe)
    if not changed or accept:
        return [f"data file changed since training: {line}" for line in changed]
    raise RunError(
        "a data file changed since this run's splits were made from it:\n  "
        + "\n  ".join(changed)
        + f"\n{doing[:1].upper()}{doing[1:]} would re-split the changed file, so the splits may differ from "
        "training's and held-out pairs may overlap the training data. Put back the file the run was trained "
        f"on, or train a new run; to go on with the file as it is now, pass {ACCEPT_CHANGED_DATA}."
    )
