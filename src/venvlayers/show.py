"""`venvlayers show`: the layers of a stack, grouped by kind, with their lower layers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from venvlayers.errors import VenvLayersError
from venvlayers.spec import ApplicationSpec, LayerKind, LayerSpec, RuntimeSpec, StackSpec


@dataclass(frozen=True)
class LayerView:
    kind: LayerKind
    name: str
    build_name: str
    install_target: str
    versioned: bool
    locked: bool
    lock_reason: str
    lock_version: int | None
    enabled: bool
    platforms: tuple[str, ...]
    lower_layers: tuple[str, ...]
    python_implementation: str
    launch_module: str | None
    # Runtime layers only: why no runtime source can provide the version (None: fine).
    runtime_problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = {
            "name": self.name,
            "build_name": self.build_name,
            "install_target": self.install_target,
            "versioned": self.versioned,
            "locked": self.locked,
            "lock_status": self.lock_reason,
            "lock_version": self.lock_version,
            "enabled": self.enabled,
            "platforms": list(self.platforms),
            "lower_layers": list(self.lower_layers),
            "python_implementation": self.python_implementation,
            "launch_module": self.launch_module,
        }
        if self.kind is LayerKind.RUNTIME:
            data["runtime_problem"] = self.runtime_problem
        return data


def layer_views(stack: StackSpec, include: Sequence[str] = ()) -> list[LayerView]:
    from venvlayers.lock import lock_status

    views = []
    for layer in stack.select(include):
        status = lock_status(stack, layer)
        runtime = stack.runtime_of(layer)
        views.append(
            LayerView(
                kind=layer.kind,
                name=layer.name,
                build_name=layer.build_name,
                install_target=layer.install_target(status.lock_version),
                versioned=layer.versioned,
                locked=status.valid,
                lock_reason=status.reason,
                lock_version=status.lock_version,
                enabled=layer.enabled,
                platforms=layer.platforms,
                lower_layers=layer.lower_layers,
                python_implementation=str(runtime.python_implementation),
                launch_module=_launch_module(layer),
                runtime_problem=_runtime_problem(layer),
            )
        )
    return views


def _runtime_problem(layer: LayerSpec) -> str | None:
    """What ``lock`` would refuse about a runtime's version; ``show`` only marks it."""
    from venvlayers.runtime import runtime_problem

    if not isinstance(layer, RuntimeSpec) or not layer.enabled:
        return None
    try:
        return runtime_problem(layer)
    except VenvLayersError as exc:
        return str(exc)


def _launch_module(layer: LayerSpec) -> str | None:
    return layer.launch_module_name if isinstance(layer, ApplicationSpec) else None


def render_text(views: Sequence[LayerView]) -> str:
    lines: list[str] = []
    for kind in LayerKind:
        group = [v for v in views if v.kind is kind]
        if not group:
            continue
        lines.append(f"{kind.table.capitalize()}:")
        for view in group:
            mark = " " if view.locked else "*"
            title = view.build_name
            if view.versioned:
                title = f"{view.build_name} -> {view.install_target}"
            if not view.enabled:
                title += "  (disabled: no platforms)"
            if view.runtime_problem is not None:
                title += "  (runtime unavailable, see below)"
            lines.append(f"  {mark}{title}")
            lines.extend(f"      {lower}" for lower in view.lower_layers)
    if any(not v.locked for v in views):
        lines.append("(* = no valid lock: run `venvlayers lock SPEC`)")
    lines.extend(f"unavailable: {v.runtime_problem}" for v in views if v.runtime_problem)
    return "\n".join(lines)


def render_json(stack: StackSpec, views: Sequence[LayerView]) -> dict[str, Any]:
    data: dict[str, Any] = {"spec": str(stack.path)}
    for kind in LayerKind:
        data[kind.table] = [v.to_json() for v in views if v.kind is kind]
    return data
