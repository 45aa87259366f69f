"""Load and validate a ``venvstacks.toml`` stack specification into a :class:`StackSpec`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from venvlayers import layout
from venvlayers.environment import Environment
from venvlayers.environment import current as current_environment
from venvlayers.errors import SpecError
from venvlayers.spec.c3 import C3Conflict, linearize
from venvlayers.spec.fields import Fields
from venvlayers.spec.indexes import IndexConflict, effective_indexes
from venvlayers.spec.model import (
    ALL_PLATFORMS,
    DEFAULT_GLIBC,
    DEFAULT_MACOSX,
    RUNTIME_SOURCES,
    ApplicationSpec,
    FrameworkSpec,
    LayerKind,
    LayerSpec,
    PackageIndex,
    PythonImplementation,
    RuntimeSpec,
    StackSpec,
    module_name,
)
from venvlayers.spec.uvconfig import UV_CONFIG_FILENAME, load_uv_config, read_toml
from venvlayers.spec.values import (
    IMPLEMENTATION,
    LAYER_NAME,
    check_platform,
    close_match,
    default_macosx,
    is_package_manager_file,
    linux_target,
    macosx_target,
    version_key,
)

SPEC_FILENAME = layout.SPEC_FILENAME
__all__ = ["SPEC_FILENAME", "UV_CONFIG_FILENAME", "load_stack"]

_COMMON_FIELDS = (
    "name",
    "requirements",
    "requirements_from",
    "platforms",
    "versioned",
    "linux_target",
    "macosx_target",
    "dynlib_exclude",
    "package_indexes",
    "priority_indexes",
    "index_overrides",
    "build_requirements",
)
_KIND_FIELDS: dict[LayerKind, tuple[str, ...]] = {
    LayerKind.RUNTIME: ("python_implementation", "fully_versioned_name", "source", "source_path"),
    LayerKind.FRAMEWORK: ("runtime", "frameworks"),
    LayerKind.APPLICATION: ("runtime", "frameworks", "launch_module", "support_modules"),
}


def load_stack(
    path: str | os.PathLike[str], *, environment: Environment | None = None
) -> StackSpec:
    """Read and validate the stack specification at ``path`` (a file or its folder).

    ``environment`` supplies the defaults a spec may leave to it (exclude-newer, the macOS
    target); by default this process's.
    """
    spec_path = Path(path).expanduser()
    if spec_path.is_dir():
        spec_path = spec_path / SPEC_FILENAME
    if not spec_path.is_file():
        raise SpecError(f"{spec_path}: stack specification not found (check the path)")
    spec_path = spec_path.resolve()
    data = read_toml(spec_path)
    return _Loader(spec_path, data, environment or current_environment()).load()


class _Loader:
    def __init__(self, path: Path, data: dict[str, Any], environment: Environment) -> None:
        self.path = path
        self.data = data
        self.environment = environment
        self.warnings: list[str] = []
        self.runtimes: dict[str, RuntimeSpec] = {}
        self.frameworks: dict[str, FrameworkSpec] = {}
        self.applications: dict[str, ApplicationSpec] = {}
        self.indexes: dict[str, PackageIndex] = {}

    def load(self) -> StackSpec:
        top = Fields(str(self.path.name), self.data)
        tables = {kind: self._tables(top, kind) for kind in LayerKind}
        tool = self.data.get("tool")
        top._get("tool")
        top.check_unknown(lambda n: close_match(n, [k.table for k in LayerKind]))
        uv_config = load_uv_config(self.path, tool)
        self.indexes = uv_config.indexes
        for kind in LayerKind:
            for position, table in enumerate(tables[kind]):
                self._load_layer(kind, position, table)
        return StackSpec(
            path=self.path,
            runtimes=tuple(self.runtimes.values()),
            frameworks=tuple(self.frameworks.values()),
            applications=tuple(self.applications.values()),
            indexes=tuple(self.indexes.values()),
            uv_config=uv_config.settings,
            uv_config_path=uv_config.path,
            exclude_newer=uv_config.settings.get("exclude-newer", self.environment.exclude_newer),
            warnings=tuple(self.warnings),
        )

    def _tables(self, top: Fields, kind: LayerKind) -> list[dict[str, Any]]:
        value = top._get(kind.table)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            top.fail(kind.table, f"must be an array of tables ([[{kind.table}]])")
        return value

    # -- layers ----------------------------------------------------------------------------
    def _load_layer(self, kind: LayerKind, position: int, table: dict[str, Any]) -> None:
        raw_name = table.get("name")
        where = (
            f"{kind.value} {raw_name!r}"
            if isinstance(raw_name, str)
            else f"{kind.value} #{position + 1}"
        )
        fields = Fields(where, table)
        _check_unknown_fields(fields, kind)
        name = fields.required_string("name")
        self._check_name(fields, kind, name)
        common = self._common(fields, kind)
        layer: LayerSpec
        if kind is LayerKind.RUNTIME:
            layer = self._runtime(fields, name, common)
            self.runtimes[name] = layer
        else:
            runtime, framework_order, lowers = self._lower_layers(fields, kind, name)
            common = self._inherit(fields, common, lowers)
            if kind is LayerKind.FRAMEWORK:
                layer = FrameworkSpec(
                    **common, runtime_name=runtime, frameworks=lowers_names(lowers),
                    framework_order=framework_order,
                )  # fmt: skip
                self.frameworks[name] = layer
            else:
                launch, support = self._modules(fields)
                layer = ApplicationSpec(
                    **common, runtime_name=runtime, frameworks=lowers_names(lowers),
                    framework_order=framework_order, launch_module=launch,
                    support_modules=support,
                )  # fmt: skip
                self.applications[name] = layer

    def _check_name(self, fields: Fields, kind: LayerKind, name: str) -> None:
        if not LAYER_NAME.match(name):
            fields.fail(
                "name",
                f"{name!r} is not a valid layer name"
                " (letters, digits and . _ @ + -, starting with a letter or digit)",
            )
        if kind is LayerKind.RUNTIME:
            for prefix in ("app-", "framework-"):
                if name.startswith(prefix):
                    fields.fail("name", f"runtime names may not start with the reserved {prefix!r}")
        if name in self._defined(kind):
            fields.fail("name", f"duplicate {kind.value} name {name!r}")

    def _defined(self, kind: LayerKind) -> dict[str, LayerSpec]:
        if kind is LayerKind.RUNTIME:
            return dict(self.runtimes)
        if kind is LayerKind.FRAMEWORK:
            return dict(self.frameworks)
        return dict(self.applications)

    def _common(self, fields: Fields, kind: LayerKind) -> dict[str, Any]:
        requirements = fields.string_list("requirements", required=True)
        assert requirements is not None
        for requirement in requirements:
            try:
                Requirement(requirement)
            except InvalidRequirement as exc:
                # packaging's message continues with the requirement and a caret line.
                reason = str(exc).splitlines()[0] if str(exc) else "not PEP 508"
                fields.fail("requirements", f"invalid requirement {requirement!r}: {reason}")
        if fields.has("build_requirements"):
            fields.string_list("build_requirements")
            self.warnings.append(
                f"{fields.where}: 'build_requirements' is deprecated and ignored (remove it)"
            )
        platforms = fields.string_list("platforms")
        if platforms is not None:
            for platform in platforms:
                check_platform(fields, platform)
            # The order written in the spec means nothing; a canonical order keeps the
            # model (and everything hashed from it) independent of it.
            platforms = [p for p in ALL_PLATFORMS if p in platforms]
        package_indexes = {
            canonicalize_name(dist): index
            for dist, index in fields.string_table("package_indexes").items()
        }
        for index in package_indexes.values():
            self._check_index(fields, "package_indexes", index)
        priority = fields.string_list("priority_indexes") or []
        for index in priority:
            self._check_index(fields, "priority_indexes", index)
        overrides = fields.string_table("index_overrides")
        for old, new in overrides.items():
            self._check_index(fields, "index_overrides", old)
            self._check_index(fields, "index_overrides", new)
        return {
            "kind": kind,
            "name": fields.required_string("name"),
            "requirements": tuple(requirements),
            "requirements_from": self._requirement_files(fields),
            "platforms": tuple(platforms) if platforms is not None else None,
            "versioned": fields.boolean("versioned"),
            "linux_target": linux_target(fields),
            "macosx_target": macosx_target(fields),
            "dynlib_exclude": tuple(fields.string_list("dynlib_exclude") or ()),
            "package_indexes": tuple(sorted(package_indexes.items())),
            "priority_indexes": tuple(priority),
            "index_overrides": tuple(sorted(overrides.items())),
        }

    def _check_index(self, fields: Fields, field: str, index: str) -> None:
        if index not in self.indexes:
            known = ", ".join(sorted(self.indexes)) or "none: define them in [[tool.uv.index]]"
            fields.fail(field, f"unknown index {index!r} (named indexes: {known})")

    def _requirement_files(self, fields: Fields) -> tuple[Path, ...]:
        names = fields.string_list("requirements_from", allow_single=True) or []
        paths = []
        for name in names:
            path = (self.path.parent / name).resolve()
            if not path.is_file():
                fields.fail("requirements_from", f"file not found: {path}")
            paths.append(path)
        managers = [p for p in paths if is_package_manager_file(p)]
        if len(managers) > 1:
            fields.fail(
                "requirements_from",
                f"two package-manager files for one layer: {managers[0].name} and"
                f" {managers[1].name} (keep one)",
            )
        return tuple(paths)

    def _runtime(self, fields: Fields, name: str, common: dict[str, Any]) -> RuntimeSpec:
        if fields.has("python_implementation") and fields.has("fully_versioned_name"):
            fields.fail(
                "fully_versioned_name",
                "give only 'python_implementation' (fully_versioned_name is its deprecated name)",
            )
        field = "python_implementation"
        if fields.has("fully_versioned_name"):
            field = "fully_versioned_name"
            self.warnings.append(
                f"{fields.where}: 'fully_versioned_name' is deprecated;"
                " rename it to 'python_implementation'"
            )
        text = fields.required_string(field)
        match = IMPLEMENTATION.match(text)
        if not match:
            fields.fail(field, f"{text!r} is not 'cpython@X.Y' or 'cpython@X.Y.Z' (or pypy@...)")
        source = fields.string("source", default="auto")
        if source not in RUNTIME_SOURCES:
            fields.fail("source", f"{source!r} is not one of {', '.join(RUNTIME_SOURCES)}")
        common["platforms"] = (
            common["platforms"] if common["platforms"] is not None else ALL_PLATFORMS
        )
        common["linux_target"] = common["linux_target"] or DEFAULT_GLIBC
        common["macosx_target"] = common["macosx_target"] or default_macosx(
            self.environment.macosx_deployment_target
        )
        # Nothing lies beneath a runtime: its own choices are what the layers above inherit.
        common["effective_package_indexes"] = common["package_indexes"]
        return RuntimeSpec(
            **common,
            python_implementation=PythonImplementation(match.group(1), match.group(2)),
            source=source or "auto",
            source_path=self._source_path(fields),
        )

    def _source_path(self, fields: Fields) -> str | None:
        """A file or folder resolved against the spec's folder; a mirror URL as it is."""
        text = fields.string("source_path")
        if text is None or "://" in text:
            return text
        if not text:
            fields.fail("source_path", "must not be empty (leave it out instead)")
        return str((self.path.parent / Path(text).expanduser()).resolve())

    def _lower_layers(
        self, fields: Fields, kind: LayerKind, name: str
    ) -> tuple[str, tuple[str, ...], list[LayerSpec]]:
        has_runtime, has_frameworks = fields.has("runtime"), fields.has("frameworks")
        if has_runtime == has_frameworks:
            fields.fail(
                "runtime" if has_runtime else None,
                "give exactly one of 'runtime' and 'frameworks'"
                + (" (not both)" if has_runtime else " (neither is set)"),
            )
        if has_runtime:
            runtime = fields.required_string("runtime")
            if runtime not in self.runtimes:
                fields.fail("runtime", self._unknown("runtime", runtime, LayerKind.RUNTIME))
            return runtime, (), [self.runtimes[runtime]]
        names = fields.string_list("frameworks", required=True)
        assert names is not None
        if not names:
            fields.fail("frameworks", "must name at least one framework (or use 'runtime')")
        if len(set(names)) != len(names):
            fields.fail("frameworks", "lists a framework more than once")
        for framework in names:
            if kind is LayerKind.FRAMEWORK and framework == name:
                fields.fail("frameworks", f"framework {name!r} lists itself")
            if framework not in self.frameworks:
                fields.fail(
                    "frameworks", self._unknown("framework", framework, LayerKind.FRAMEWORK)
                )
        declared: list[LayerSpec] = [self.frameworks[n] for n in names]
        runtimes = {self._runtime_name(f) for f in declared}
        if len(runtimes) > 1:
            detail = ", ".join(f"{f.name!r} uses {self._runtime_name(f)!r}" for f in declared)
            fields.fail("frameworks", f"frameworks are on different runtimes ({detail})")
        orders = {f.name: (f.name, *f.framework_order) for f in self.frameworks.values()}
        try:
            order = linearize(names, orders)
        except C3Conflict as exc:
            fields.fail(
                "frameworks",
                "no consistent sys.path order (C3) for these frameworks: conflict between "
                + " and ".join(repr(n) for n in exc.layers)
                + "; reorder 'frameworks' to agree with their own framework orders",
            )
        runtime = runtimes.pop()
        return runtime, order, declared

    @staticmethod
    def _runtime_name(layer: LayerSpec) -> str:
        assert isinstance(layer, FrameworkSpec)
        return layer.runtime_name

    def _unknown(self, what: str, name: str, kind: LayerKind) -> str:
        later = [t.get("name") for t in self.data.get(kind.table, []) if isinstance(t, dict)]
        defined = self._defined(kind)
        if name in later:
            return f"{what} {name!r} is defined later in the file; layers may only use layers defined before them"
        known = ", ".join(repr(n) for n in defined) or "none defined"
        return f"unknown {what} {name!r} (defined: {known})"

    def _inherit(
        self, fields: Fields, common: dict[str, Any], lowers: list[LayerSpec]
    ) -> dict[str, Any]:
        """Fill platform, target and index defaults from the layers beneath."""
        lower_platforms = [p for p in ALL_PLATFORMS if all(p in low.platforms for low in lowers)]
        if common["platforms"] is None:
            common["platforms"] = tuple(lower_platforms)
        else:
            missing = [p for p in common["platforms"] if p not in lower_platforms]
            if missing:
                supported = ", ".join(lower_platforms) or "none, a layer beneath has platforms = []"
                fields.fail(
                    "platforms",
                    f"{', '.join(missing)} not available in the layers beneath"
                    f" (they support: {supported})",
                )
        if common["linux_target"] is None:
            common["linux_target"] = max(
                (low.linux_target for low in lowers), key=version_key, default=DEFAULT_GLIBC
            )
        if common["macosx_target"] is None:
            common["macosx_target"] = max(
                (low.macosx_target for low in lowers), key=version_key, default=DEFAULT_MACOSX
            )
        try:
            # Each declared lower layer's mapping already includes the layers beneath it
            # and its own index_overrides, so a conflict settled there stays settled.
            effective = effective_indexes(
                inherited=[(low.label, dict(low.effective_package_indexes)) for low in lowers],
                own=dict(common["package_indexes"]),
                overrides=dict(common["index_overrides"]),
            )
        except IndexConflict as exc:
            fields.fail("package_indexes", str(exc))
        common["effective_package_indexes"] = tuple(sorted(effective.items()))
        return common

    def _modules(self, fields: Fields) -> tuple[Path, tuple[Path, ...]]:
        launch = self._module_path(fields, "launch_module", fields.required_string("launch_module"))
        support = tuple(
            self._module_path(fields, "support_modules", text)
            for text in fields.string_list("support_modules") or ()
        )
        seen = {module_name(launch): "launch_module"}
        for path in support:
            stem = module_name(path)
            if stem in seen:
                clash = (
                    "the launch module"
                    if seen[stem] == "launch_module"
                    else "another support module"
                )
                fields.fail(
                    "support_modules", f"module name {stem!r} ({path.name}) is also used by {clash}"
                )
            seen[stem] = "support_modules"
        return launch, support

    def _module_path(self, fields: Fields, field: str, text: str) -> Path:
        # Normalized but not resolved: the module's name is the name written in the spec,
        # even when that file or folder is a symlink to one with another name.
        path = Path(os.path.normpath(self.path.parent / Path(text).expanduser()))
        if not path.exists():
            fields.fail(field, f"module not found: {path}")
        if path.is_file() and path.suffix != ".py":
            fields.fail(field, f"{path.name} is neither a .py file nor a package folder")
        if not module_name(path).isidentifier():
            fields.fail(field, f"{module_name(path)!r} is not an importable module name")
        if field == "launch_module" and path.is_dir() and not (path / "__main__.py").is_file():
            fields.fail(
                field, f"package {path.name} has no __main__.py, so 'python -m' cannot run it"
            )
        return path


def _check_unknown_fields(fields: Fields, kind: LayerKind) -> None:
    # Checked before anything else so a misspelt field is reported as such, not as a
    # missing required one.
    known = _COMMON_FIELDS + _KIND_FIELDS[kind]
    unknown = fields.unknown(known)
    if not unknown:
        return
    field = unknown[0]
    owners = [other.value for other in LayerKind if field in _KIND_FIELDS[other]]
    if owners:
        fields.fail(
            field,
            f"not a field of {kind.value} layers (only {' and '.join(owners)} layers have it)",
        )
    hint = close_match(field, known)
    fields.fail(field, "unknown field" + (f" (did you mean {hint!r}?)" if hint else ""))


def lowers_names(lowers: list[LayerSpec]) -> tuple[str, ...]:
    return tuple(low.name for low in lowers if isinstance(low, FrameworkSpec))
