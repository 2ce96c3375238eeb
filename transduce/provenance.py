"""Which plugin distribution provided each component of a run, and what to install when one is missing.

A run records 'family/name' -> 'distribution version' in components.json (and
in its last checkpoint). When the run is reopened on a machine that lacks a
plugin, the error names the distribution and version to install instead of
only saying that a name is unknown.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
from typing import TYPE_CHECKING, Any

from transduce import positions
from transduce.errors import RunError

if TYPE_CHECKING:
    from transduce.registry import Registry
    from transduce.rundir import RunDir


def components_used(recipe: dict[str, Any], registry: Registry) -> dict[str, str]:
    """'family/name' -> 'distribution version' for every component a resolved recipe names (nested ones too)."""
    out: dict[str, str] = {}
    for family, spec, _ in positions.specs(recipe, registry):
        info = registry.get(family, spec["name"])
        if info is not None:
            out[f"{family}/{spec['name']}"] = f"{info.provider.distribution} {info.provider.version}"
    return out


def recorded_components(run: RunDir) -> dict[str, str]:
    """The run's record: components.json, else the last checkpoint's 'components' (loaded safely); {} if none."""
    if run.components.is_file():
        try:
            data = json.loads(run.components.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RunError(f"{run.components}: not a readable components record ({exc})") from None
    elif run.last_checkpoint.is_file():
        from transduce import checkpoint  # noqa: PLC0415 - torch only when there is no JSON record

        saved = checkpoint.load(run.last_checkpoint)
        data = saved.get("components", {}) if isinstance(saved, dict) else None
    else:
        return {}
    if not isinstance(data, dict):
        raise RunError(f"{run.components}: not a readable components record (expected a JSON object)")
    return {str(key): str(value) for key, value in data.items()}


def missing_plugins(recorded: dict[str, str], registry: Registry) -> dict[str, list[str]]:
    """'distribution version' -> the recorded components ('family/name') that the registry lacks."""
    missing: dict[str, list[str]] = {}
    for component, provider in recorded.items():
        family, _, name = component.partition("/")
        if registry.get(family, name) is None:
            missing.setdefault(provider, []).append(component)
    return missing


def require_plugins(run: RunDir, registry: Registry) -> None:
    """Raise RunError naming the distributions to install when a component the run used is not installed."""
    missing = missing_plugins(recorded_components(run), registry)
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
