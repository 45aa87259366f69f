"""Each layer's software bill of materials: CycloneDX JSON in ``share/venv/metadata/``.

Written at build time, so it travels inside the archive (listed in its manifest) and is in
every export and deployment. Reproducible: the serial number is derived from what the SBOM
describes and the timestamp is the lock time, so the same lock gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import Distribution, PackageMetadata, PathDistribution
from pathlib import Path

from cyclonedx.contrib.license.exceptions import InvalidLicenseExpressionException
from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.model import (
    ExternalReference,
    ExternalReferenceType,
    HashAlgorithm,
    HashType,
    Property,
    XsUri,
)
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.license import DisjunctiveLicense, License, LicenseExpression
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL
from packaging.utils import canonicalize_name

from venvlayers import __version__, layout
from venvlayers.contract import LayerKind
from venvlayers.lock import LayerLock, LockedPackage, LockedWheel

# CycloneDX's component type for each kind of layer.
_LAYER_TYPES = {
    LayerKind.RUNTIME: ComponentType.PLATFORM,
    LayerKind.FRAMEWORK: ComponentType.FRAMEWORK,
    LayerKind.APPLICATION: ComponentType.APPLICATION,
}
# A licence text longer than this is a whole licence file pasted into METADATA: named, not kept.
_LICENSE_NAME_MAX = 120


@dataclass(frozen=True, kw_only=True)
class SbomRequest:
    install_target: str
    kind: LayerKind
    lock: LayerLock
    installed: Sequence[tuple[LockedPackage, LockedWheel]]
    site_packages: Path
    python_version: str  # X.Y.Z of the runtime
    runtime_source: str | None = None  # runtime layers: where the interpreter came from
    lower_layers: Sequence[tuple[str, LayerKind, Path]] = ()  # install target, kind, folder


def write_layer_sbom(layer_dir: Path, request: SbomRequest) -> None:
    """Write the SBOM of the layer being built in ``layer_dir``."""
    path = layer_dir / layout.LAYER_SBOM
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_sbom(request), encoding="utf-8")


def render_sbom(request: SbomRequest) -> str:
    bom = Bom(serial_number=layer_serial(request.install_target, request.lock, request))
    bom.metadata.timestamp = _lock_time(request.lock.locked_at)
    bom.metadata.tools.components.add(
        Component(name="venvlayers", version=__version__, type=ComponentType.APPLICATION)
    )
    root = Component(
        name=request.install_target,
        version=str(request.lock.lock_version),
        type=_LAYER_TYPES[request.kind],
        bom_ref=layer_ref(request.install_target),
        description=f"venvlayers {request.kind.value} layer",
    )
    bom.metadata.component = root
    parts: list[Component] = []
    if request.kind is LayerKind.RUNTIME:
        parts.append(_runtime_component(request))
    distributions = _distributions(request.site_packages)
    for package, wheel in request.installed:
        parts.append(_package_component(package, wheel, distributions))
    for install_target, kind, folder in request.lower_layers:
        parts.append(_lower_layer_component(install_target, kind, folder))
    for part in parts:
        bom.components.add(part)
    bom.register_dependency(root, parts)
    return JsonV1Dot6(bom).output_as_string(indent=1) + "\n"


def layer_ref(install_target: str) -> str:
    return f"layer:{install_target}"


def layer_serial(install_target: str, lock: LayerLock, request: SbomRequest) -> uuid.UUID:
    """The same layer from the same lock on the same Python: the same serial number."""
    key = f"venvlayers:{install_target}:{lock.requirements_hash}:{request.python_version}"
    return uuid.uuid5(uuid.NAMESPACE_URL, key)


def _runtime_component(request: SbomRequest) -> Component:
    component = Component(
        name="cpython",
        version=request.python_version,
        type=ComponentType.PLATFORM,
        bom_ref=f"runtime:cpython@{request.python_version}",
        purl=PackageURL("generic", None, "cpython", request.python_version),
        description="the layer's Python interpreter and standard library",
    )
    if request.runtime_source:
        component.properties.add(
            Property(name="venvlayers:runtime_source", value=request.runtime_source)
        )
    return component


def _package_component(
    package: LockedPackage, wheel: LockedWheel, distributions: dict[str, Distribution]
) -> Component:
    purl = PackageURL("pypi", None, str(canonicalize_name(package.name)), package.version)
    component = Component(
        name=package.name,
        version=package.version,
        type=ComponentType.LIBRARY,
        bom_ref=purl.to_string(),
        purl=purl,
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=wheel.sha256)],
    )
    if wheel.url:
        component.external_references.add(
            ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(wheel.url))
        )
    distribution = distributions.get(str(canonicalize_name(package.name)))
    if distribution is not None:
        component.licenses.update(_licenses(distribution))
    return component


def _lower_layer_component(install_target: str, kind: LayerKind, folder: Path) -> Component:
    """A layer beneath, referring to its own SBOM (by serial number when it has one)."""
    component = Component(
        name=install_target,
        type=_LAYER_TYPES[kind],
        bom_ref=layer_ref(install_target),
        description=f"venvlayers {kind.value} layer beneath this one",
    )
    serial = _serial_of(folder / layout.LAYER_SBOM)
    if serial is not None:
        url = f"{serial}/1#{layer_ref(install_target)}"
        component.external_references.add(
            ExternalReference(type=ExternalReferenceType.BOM, url=XsUri(url))
        )
    return component


def _serial_of(sbom: Path) -> str | None:
    try:
        serial = json.loads(sbom.read_text(encoding="utf-8")).get("serialNumber")
    except (OSError, ValueError, AttributeError):
        return None
    return serial if isinstance(serial, str) else None


def _distributions(site_packages: Path) -> dict[str, Distribution]:
    found: dict[str, Distribution] = {}
    for info in sorted(site_packages.glob("*.dist-info")):
        distribution = PathDistribution(info)
        name = distribution.metadata["Name"]
        if name:
            found[str(canonicalize_name(name))] = distribution
    return found


def _licenses(distribution: Distribution) -> list[License]:
    """PEP 639's License-Expression, else the License field, else the licence classifiers."""
    metadata = distribution.metadata
    factory = LicenseFactory()
    expression = _field(metadata, "License-Expression")
    if expression:
        try:
            return [factory.make_with_expression(expression)]
        except InvalidLicenseExpressionException:
            return [DisjunctiveLicense(name=expression[:_LICENSE_NAME_MAX])]
    text = (_field(metadata, "License") or "").strip()
    if text and "\n" not in text and len(text) <= _LICENSE_NAME_MAX:
        return [_from_text(factory, text)]
    classifiers = [
        c.rsplit(" :: ", 1)[-1]
        for c in metadata.get_all("Classifier") or []
        if c.startswith("License ::")
    ]
    return [DisjunctiveLicense(name=name) for name in sorted(set(classifiers))]


def _field(metadata: PackageMetadata, name: str) -> str | None:
    values = metadata.get_all(name)
    return str(values[0]) if values else None


def _from_text(factory: LicenseFactory, text: str) -> License:
    made = factory.make_from_string(text)
    return (
        made
        if isinstance(made, (DisjunctiveLicense, LicenseExpression))
        else DisjunctiveLicense(name=text)
    )


def _lock_time(locked_at: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(locked_at.replace("Z", "+00:00"))
    except ValueError:
        return dt.datetime(1980, 1, 1, tzinfo=dt.UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
