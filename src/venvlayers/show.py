"""`venvlayers show`: the layers of a stack, grouped by kind, with their lower layers.

The JSON shape holds venvstacks' own (``spec_name``; per layer ``name`` as the build name,
``install_target``, ``has_valid_lock``, ``selected_operations``, ``dependencies``) and adds
venvlayers' fields beside it.
"""

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
    # What the command at hand would do to the layer (`--show`); None for `show` itself.
    operations: tuple[str, ...] | None = None

    def status_json(self) -> dict[str, Any]:
        """venvstacks' LayerStatus fields."""
        return {
            "name": self.build_name,
            "install_target": self.install_target,
            "has_valid_lock": self.locked,
            "selected_operations": None if self.operations is None else list(self.operations),
        }

    def to_json(self, dependencies: Sequence[LayerView] = ()) -> dict[str, Any]:
        data = {
            **self.status_json(),
            "short_name": self.name,
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
        else:
            data["dependencies"] = [view.status_json() for view in dependencies]
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
            if view.operations:
                title += f" ({', '.join(view.operations)})"
            lines.append(f"  {mark}{title}")
            lines.extend(f"      {lower}" for lower in view.lower_layers)
    if any(not v.locked for v in views):
        lines.append("(* = no valid lock: run `venvlayers lock SPEC`)")
    lines.extend(f"unavailable: {v.runtime_problem}" for v in views if v.runtime_problem)
    return "\n".join(lines)


def render_json(stack: StackSpec, views: Sequence[LayerView]) -> dict[str, Any]:
    data: dict[str, Any] = {"spec_name": str(stack.path), "spec": str(stack.path)}
    by_name = {v.build_name: v for v in views}

    def dependencies(view: LayerView) -> list[LayerView]:
        # venvstacks lists frameworks before the runtime, as sys.path orders them.
        return [by_name[name] for name in view.lower_layers if name in by_name]

    for kind in LayerKind:
        data[kind.table] = [v.to_json(dependencies(v)) for v in views if v.kind is kind]
    return data
