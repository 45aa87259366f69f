"""Version matching, source resolution and what a provider offers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from venvlayers.errors import RuntimeProviderError
from venvlayers.runtime import PROVIDERS, SOURCE_ENV, RuntimeProvider, resolve_source
from venvlayers.runtime._base import NoMatchingVersion, ProviderContext, RuntimeCandidate
from venvlayers.runtime.versions import matches, newest, summarize, version_key
from venvlayers.spec.model import PythonImplementation


def impl(text: str) -> PythonImplementation:
    name, _, version = text.partition("@")
    return PythonImplementation(name, version)


@pytest.mark.parametrize(
    ("request_text", "implementation", "version", "expected"),
    [
        ("cpython@3.11", "cpython", "3.11.7", True),
        ("cpython@3.11", "cpython", "3.11.10", True),
        ("cpython@3.11", "cpython", "3.12.1", False),
        ("cpython@3.1", "cpython", "3.11.7", False),
        ("cpython@3.11.7", "cpython", "3.11.7", True),
        ("cpython@3.11.7", "cpython", "3.11.17", False),
        ("cpython@3.11", "pypy", "3.11.7", False),
    ],
)
def test_matches_feature_and_exact_versions(
    request_text: str, implementation: str, version: str, expected: bool
) -> None:
    assert matches(impl(request_text), implementation, version) is expected


def test_version_key_sorts_numerically() -> None:
    assert sorted(["3.11.10", "3.11.9", "3.9.18"], key=version_key) == [
        "3.9.18",
        "3.11.9",
        "3.11.10",
    ]


def test_newest_prefers_highest_match_then_earliest_offer() -> None:
    offers = [("a", "3.11.9"), ("b", "3.11.10"), ("c", "3.12.1"), ("d", "3.11.10")]
    best = newest(
        impl("cpython@3.11"),
        offers,
        implementation_of=lambda _o: "cpython",
        version_of=lambda o: o[1],
    )
    assert best == ("b", "3.11.10")
    exact = newest(
        impl("cpython@3.11.9"),
        offers,
        implementation_of=lambda _o: "cpython",
        version_of=lambda o: o[1],
    )
    assert exact == ("a", "3.11.9")
    assert (
        newest(
            impl("cpython@3.13"),
            offers,
            implementation_of=lambda _o: "cpython",
            version_of=lambda o: o[1],
        )
        is None
    )


def test_summarize_keeps_newest_per_feature_version_when_long() -> None:
    assert summarize(["3.11.7", "3.10.13", "3.11.7"]) == "3.10.13, 3.11.7"
    many = [f"3.{minor}.{micro}" for minor in range(8, 14) for micro in range(3)]
    assert summarize(many, limit=3) == "..., 3.11.2, 3.12.2, 3.13.2"
    assert summarize([]) == "nothing"


def test_resolve_source_prefers_cli_then_env_then_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SOURCE_ENV, raising=False)
    assert resolve_source("local") == "local"
    assert resolve_source("", None) == "auto"
    monkeypatch.setenv(SOURCE_ENV, "standalone")
    assert resolve_source("local") == "standalone"
    assert resolve_source("local", "archive") == "archive"


def test_resolve_source_rejects_unknown_values_naming_where(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SOURCE_ENV, "conda")
    with pytest.raises(RuntimeProviderError, match=f"^{SOURCE_ENV}: 'conda' is not a runtime"):
        resolve_source("auto")
    with pytest.raises(RuntimeProviderError, match=r"^--runtime-source: 'pbs' is not"):
        resolve_source("auto", "pbs")


def test_registry_has_one_provider_per_source() -> None:
    assert set(PROVIDERS) == {"standalone", "local", "archive"}
    for name, provider in PROVIDERS.items():
        assert provider.source == name


class FixedProvider(RuntimeProvider):
    source = "fixed"

    def __init__(self, offers: Sequence[tuple[str, str]]) -> None:
        super().__init__(ProviderContext(None, Path("/nonexistent"), lambda _m: None))
        self._offers = offers

    @property
    def description(self) -> str:
        return "fixed offers"

    def candidates(
        self, implementation: str, feature_version: str | None = None
    ) -> Sequence[RuntimeCandidate]:
        return [
            RuntimeCandidate("cpython", version, f"/py/{version}", finder, version)
            for version, finder in self._offers
        ]

    def materialize(self, candidate: RuntimeCandidate, dest: Path) -> None:
        raise AssertionError("not used")


def test_find_picks_newest_for_feature_version_and_exact_for_full_version() -> None:
    provider = FixedProvider([("3.11.7", "pyenv"), ("3.11.9", "uv"), ("3.12.1", "pyenv")])
    assert provider.find(impl("cpython@3.11")).version == "3.11.9"
    assert provider.find(impl("cpython@3.11.7")).version == "3.11.7"


def test_find_lists_what_each_finder_offers_when_nothing_matches() -> None:
    provider = FixedProvider([("3.10.13", "pyenv"), ("3.11.7", "pyenv"), ("3.12.4", "uv")])
    with pytest.raises(NoMatchingVersion) as error:
        provider.find(impl("cpython@3.9"))
    assert str(error.value) == (
        "cpython@3.9: fixed offers: no match (available: 3.10.13, 3.11.7 (pyenv); 3.12.4 (uv))"
    )
    assert "\n" not in str(error.value)
