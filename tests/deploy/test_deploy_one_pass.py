"""A full layer archive checked while it is unpacked, in one pass: what must still hold.

Once deploy hashes a full archive while unpacking it (into a hidden partial folder of the
target) instead of decompressing it once beforehand to check it, a damaged or unsafe
archive is only found after other layers of the same deploy may already be in place. Every
refusal must still be one line naming the archive and what is wrong, and leave the target
exactly as it was: a replaced layer comes back, nothing is added to the store, no partial
folder stays behind, and a fresh target is not left behind at all.

Each case is built so that it cannot pass vacuously: the damaged or unsafe app is the last
layer unpacked, after a runtime and another app that changed too, its unpacking held until
those are ready to be placed (:class:`HoldLastApp`), and the damage sits at the end of its
archive.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import py_compile
import shutil
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.deploy_support import (
    FORMATS,
    RUNTIME,
    SITE,
    Entry,
    archive_of,
    deploy_command,
    entries_of,
    replace_archive,
    run_layer_python,
    set_published,
    snapshot,
    stacks_in_every_format,
    tar_entry,
)
from tests.deploy.deploy_support import (
    quick_deploy as deploy,
)
from venvlayers.contract import read_stack_metadata
from venvlayers.deploy import preflight, verify
from venvlayers.errors import DeployError

APP = "app-other"
HELLO = "app-hello"
FRAMEWORK = "framework-greet@1"


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return stacks_in_every_format(tmp_path_factory.mktemp("published"))


@pytest.fixture
def outer(tmp_path: Path) -> Path:
    """The folder the target sits in: anything a deploy leaves beside it shows here."""
    folder = tmp_path / "outer"
    folder.mkdir()
    return folder


# --- crafting published versions --------------------------------------------------------------


def with_added_file(stacks: dict[str, Path], install_target: str) -> list[Entry]:
    """The layer with one more file: a new archive, whose layer still works."""
    added = tar_entry(f"{install_target}/added-v2.txt", data=f"{install_target} v2\n".encode())
    return [*entries_of(stacks, install_target), added]


def second_version(
    stacks: dict[str, Path], fmt: str, where: Path, app: list[Entry] | None = None
) -> Path:
    """A copy of the published stack in which the runtime, app-hello and app-other changed
    (a file added to each), each published with matching size and sha256; app-other's
    archive holds ``app`` when given. Deployed onto the stack, the runtime and app-hello are
    unpacked before app-other, the last layer."""
    source = Path(shutil.copytree(stacks[fmt], where / f"source-v2{fmt}"))
    replace_archive(source, RUNTIME, with_added_file(stacks, RUNTIME))
    replace_archive(source, HELLO, with_added_file(stacks, HELLO))
    replace_archive(source, APP, app if app is not None else with_added_file(stacks, APP))
    return source


def damage_near_end(source: Path, install_target: str) -> bytes:
    """Flip the last byte of the layer's archive, leaving its published size (unchanged) and
    the sha256 of the undamaged archive in the metadata; returns the undamaged bytes.

    A zip gets a comment first, published with it: the last byte is then in the comment,
    whose content no reader acts on, so only the sha256 tells. A tar stream is damaged in its end
    (xz footer, gzip size, the last zstd block): after every member has been read.
    """
    archive = archive_of(source, install_target)
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive, "a") as zf:
            zf.comment = b"published undamaged; " * 4
    undamaged = archive.read_bytes()
    set_published(
        source,
        install_target,
        size=len(undamaged),
        sha256=hashlib.sha256(undamaged).hexdigest(),
    )
    damaged = bytearray(undamaged)
    damaged[-1] ^= 0xFF
    archive.write_bytes(bytes(damaged))
    assert archive.stat().st_size == len(undamaged)
    assert hashlib.sha256(archive.read_bytes()).hexdigest() != hashlib.sha256(undamaged).hexdigest()
    return undamaged


def escaping_link_last(stacks: dict[str, Path]) -> list[Entry]:
    """app-other, changed, with a link leaving the layer as its very last member."""
    escape = tar_entry(f"{APP}/zz-escape", tarfile.SYMTYPE, link="../../outside", mode=0o777)
    return [*with_added_file(stacks, APP), escape]


def outputs(target: Path) -> dict[str, tuple[int, str, str]]:
    """What each deployed app prints."""
    found = {}
    for app in ("hello", "other"):
        done = run_layer_python(target, app)
        found[app] = (done.returncode, done.stdout, done.stderr)
    return found


class HoldLastApp:
    """Step hook and report callback of a deploy: records the steps, and holds app-other's
    unpacking, as it starts, until app-hello is ready to be placed (30 s at most). What
    app-other's archive reveals is then found with the runtime and app-hello in place."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self._hello_ready = threading.Event()

    def step(self, step: str, install_target: str) -> None:
        self.seen.append((step, install_target))
        if (step, install_target) == ("postinstall", HELLO):
            self._hello_ready.set()

    def report(self, message: str) -> None:
        if message.startswith(f"{APP}: unpacking"):
            self._hello_ready.wait(timeout=30)

    def options(self) -> dict[str, Any]:
        return {"step_hook": self.step, "report": self.report}

    def assert_found_late(self, fmt: str) -> None:
        """A tar stream is only checked as it is unpacked (a zip's members and hash may be
        checked before): the refusal came with the layers before app-other made ready and
        placed, so taking them back was exercised."""
        if fmt != ".zip":
            assert {("postinstall", RUNTIME), ("postinstall", HELLO)} <= set(self.seen), self.seen


def refused(source: Path, target: Path, **options: Any) -> str:
    """The one line a refused deploy of ``source`` into ``target`` raises."""
    with pytest.raises(DeployError) as caught:
        deploy(source, target, **options)
    text = str(caught.value)
    assert "\n" not in text, text
    return text


def leftovers(folder: Path) -> list[str]:
    """Hidden partial (or otherwise temporary) names deploy leaves in ``folder``."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and "-" in p.name)


# --- 1. a hash mismatch found once other layers may be in place -------------------------------


@pytest.mark.parametrize("compile_bytecode", [False, True], ids=["no-compile", "compile"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_hash_mismatch_at_the_end_of_the_last_archive_puts_every_replaced_layer_back(
    stacks: dict[str, Path], tmp_path: Path, outer: Path, fmt: str, compile_bytecode: bool
) -> None:
    target = outer / "deploy"
    deploy(stacks[fmt], target, compile_bytecode=compile_bytecode)
    printed = outputs(target)
    assert printed["other"][0] == 0 and "other v1 says greetings v1" in printed["other"][1]
    source = second_version(stacks, fmt, tmp_path)
    undamaged = damage_near_end(source, APP)
    before = snapshot(outer)

    hook = HoldLastApp()
    text = refused(source, target, compile_bytecode=compile_bytecode, **hook.options())

    assert f"{APP}{fmt}" in text, text
    assert "does not match its published sha256" in text, text
    hook.assert_found_late(fmt)
    assert leftovers(target) == []
    assert snapshot(outer) == before
    assert not (target / RUNTIME / "added-v2.txt").exists()
    assert outputs(target) == printed
    report = verify(target)
    assert report.ok, report.render()

    # The same version, undamaged, deploys over it.
    archive_of(source, APP).write_bytes(undamaged)
    result = deploy(source, target, compile_bytecode=compile_bytecode)
    assert set(result.deployed) == {RUNTIME, HELLO, APP}
    for layer in (RUNTIME, HELLO, APP):
        assert (target / layer / "added-v2.txt").read_text() == f"{layer} v2\n"
    assert outputs(target) == printed
    assert leftovers(target) == []


# --- 2. an unsafe member found at the end of the last archive ---------------------------------


@pytest.mark.parametrize("fresh", [True, False], ids=["fresh-target", "deployed-target"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_link_leaving_the_layer_as_the_last_member_is_refused_and_changes_nothing(
    stacks: dict[str, Path], tmp_path: Path, outer: Path, fmt: str, fresh: bool
) -> None:
    target = outer / "deploy"
    printed = {}
    if not fresh:
        deploy(stacks[fmt], target)
        printed = outputs(target)
    source = second_version(stacks, fmt, tmp_path, app=escaping_link_last(stacks))
    before = snapshot(outer)

    hook = HoldLastApp()
    text = refused(source, target, **hook.options())

    assert f"{APP}{fmt}: refused, member '{APP}/zz-escape'" in text, text
    assert "link leaving its layer" in text, text
    hook.assert_found_late(fmt)
    assert snapshot(outer) == before
    assert not (outer / "outside").exists() and not (tmp_path / "outside").exists()
    if fresh:
        assert not target.exists(), sorted(p.name for p in target.iterdir())
    else:
        assert leftovers(target) == []
        assert outputs(target) == printed
        report = verify(target)
        assert report.ok, report.render()


# --- 3. a venv layer that brings bytecode its metadata does not declare -----------------------


def shipped_bytecode(entry: Entry, where: Path) -> bytes:
    """Real bytecode of the member's source, as CPython keys it on the member's mtime and
    size (so byte-compiling finds it current), with a file name inside that nothing compiled
    at deploy could carry: an overwritten .pyc shows."""
    info, data = entry
    module = Path(info.name).stem
    source = where / f"{module}.py"
    source.write_bytes(data)
    os.utime(source, (info.mtime, info.mtime))
    compiled = where / f"{module}.pyc"
    py_compile.compile(
        os.fspath(source),
        cfile=os.fspath(compiled),
        dfile=f"<shipped-by-the-test>/{module}.py",
        doraise=True,
        invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP,
    )
    code = compiled.read_bytes()
    assert b"<shipped-by-the-test>" in code
    return code


def with_bytecode(
    stacks: dict[str, Path], install_target: str, module: str, where: Path
) -> tuple[list[Entry], str, bytes]:
    """The layer's members plus ``__pycache__/<module>.<tag>.pyc`` beside its source, as
    the last members (after the source, so compiling it while unpacking would come first).
    Returns the members, the .pyc's layer-relative path and its bytes."""
    entries = entries_of(stacks, install_target)
    source = next(e for e in entries if e[0].name == f"{install_target}/{SITE}/{module}.py")
    where.mkdir(parents=True, exist_ok=True)
    code = shipped_bytecode(source, where)
    relative = f"{SITE}/__pycache__/{module}.{sys.implementation.cache_tag}.pyc"
    cache = tar_entry(f"{install_target}/{SITE}/__pycache__", tarfile.DIRTYPE)
    pyc = tar_entry(f"{install_target}/{relative}", data=code)
    return [*entries, cache, pyc], relative, code


def current_for(code: bytes, source: Path) -> bool:
    """Whether ``code`` is timestamp bytecode CPython (and compileall) takes as up to date
    for ``source`` as it is on disk."""
    info = source.stat()
    return (
        code[:4] == importlib.util.MAGIC_NUMBER
        and int.from_bytes(code[4:8], "little") == 0
        and int.from_bytes(code[8:12], "little") == int(info.st_mtime) & 0xFFFFFFFF
        and int.from_bytes(code[12:16], "little") == info.st_size & 0xFFFFFFFF
    )


@pytest.mark.parametrize("fresh", [True, False], ids=["fresh-target", "deployed-target"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_bytecode_shipped_in_a_venv_layer_is_kept_as_shipped_when_compiling(
    stacks: dict[str, Path], tmp_path: Path, outer: Path, fmt: str, fresh: bool
) -> None:
    """Bytecode shipped next to its sources, not declared in the metadata, with compiling
    on: neither compiling while unpacking nor compiling the placed layer overwrites or
    collides with it. (From a zip, whose members deploy gives no mtime, the shipped
    bytecode is stale for the source as deployed: there it must end up current.)"""
    target = outer / "deploy"
    if not fresh:
        # The runtime already in place: compiling could start while the layers unpack.
        deploy(stacks[fmt], target)
    source = Path(shutil.copytree(stacks[fmt], tmp_path / "source"))
    shipped: dict[str, tuple[str, str, bytes]] = {}
    for layer, module in ((FRAMEWORK, "greet"), (APP, "other")):
        entries, relative, code = with_bytecode(stacks, layer, module, tmp_path / layer)
        replace_archive(source, layer, entries)
        shipped[layer] = (f"{SITE}/{module}.py", relative, code)
    _, layers = read_stack_metadata(source)
    assert {layer.install_target for layer in layers} >= set(shipped)
    assert all(layer.bytecode is None for layer in layers), "no bytecode is declared"

    result = deploy(source, target, compile_bytecode=True)

    assert {FRAMEWORK, APP} <= set(result.deployed)
    for layer, (py, relative, code) in shipped.items():
        deployed = (target / layer / relative).read_bytes()
        if fmt == ".zip":
            # Deploy gives files from a zip no mtime of the archive's: the shipped bytecode
            # is stale for the source as deployed, and compiling makes it current.
            assert current_for(deployed, target / layer / py), f"{layer}/{relative}"
        else:
            # A tar member keeps its mtime: the shipped bytecode is current, and stays.
            assert current_for(code, target / layer / py), f"{layer}/{py}: mtime not kept"
            assert deployed == code, f"{layer}/{relative} is not the shipped bytecode"
    # Compiling did run, in the layers that brought bytecode too.
    for layer in shipped:
        assert list((target / layer / SITE / "__pycache__").glob("_venvlayers_path.*.pyc"))
    report = verify(target)
    assert report.ok, report.render()
    done = run_layer_python(target, "other")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("other v1 says greetings v1"), done.stdout
    assert leftovers(target) == []


# --- 4. a refused deploy into a fresh target, then a good one ---------------------------------


@pytest.mark.parametrize("damage", ["sha256", "member"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_refused_deploy_into_a_fresh_target_leaves_no_folder_and_the_next_deploy_works(
    stacks: dict[str, Path], tmp_path: Path, outer: Path, fmt: str, damage: str
) -> None:
    target = outer / "deploy"
    if damage == "sha256":
        source = second_version(stacks, fmt, tmp_path)
        damage_near_end(source, APP)
        expected = "does not match its published sha256"
    else:
        source = second_version(stacks, fmt, tmp_path, app=escaping_link_last(stacks))
        expected = "link leaving its layer"
    before = snapshot(outer)

    for _attempt in range(2):
        text = refused(source, target)
        assert f"{APP}{fmt}" in text and expected in text, text
        assert not target.exists(), sorted(p.name for p in target.iterdir())
        assert snapshot(outer) == before

    # Right after: the same path, a good stack (its lock file is made anew).
    result = deploy(stacks[fmt], target)
    assert set(result.deployed) == {RUNTIME, FRAMEWORK, HELLO, APP}
    done = run_layer_python(target, "other")
    assert done.returncode == 0 and "other v1 says greetings v1" in done.stdout, done
    report = verify(target)
    assert report.ok, report.render()
    assert leftovers(target) == []


def test_a_deploy_waiting_on_one_that_is_refused_into_a_fresh_target_goes_on(
    stacks: dict[str, Path], tmp_path: Path, outer: Path
) -> None:
    # The refused deploy removes the fresh target with its lock file, while another deploy
    # waits on that file: the waiting one must take the lock of the folder made anew, not
    # the removed file's, and deploy.
    fmt = ".tar.zst"
    target = outer / "deploy"
    source = second_version(stacks, fmt, tmp_path)
    damage_near_end(source, APP)
    go_on = threading.Event()

    def hold(step: str, _install_target: str) -> None:
        if step == "extract":  # the lock is held; the last archive is still to check
            go_on.wait(60)

    refusal: list[str] = []

    def refused_deploy() -> None:
        try:
            deploy(source, target, step_hook=hold)
        except DeployError as exc:
            refusal.append(str(exc))

    first = threading.Thread(target=refused_deploy)
    first.start()
    try:
        lock = target / ".venvlayers" / "lock"
        for _ in range(600):
            if lock.exists():
                break
            threading.Event().wait(0.05)
        waiting = subprocess.Popen(
            deploy_command(stacks[fmt], target),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert waiting.stderr is not None
        lines = []
        for line in waiting.stderr:
            lines.append(line)
            if "waiting for another deploy" in line:
                break
        assert any("waiting for another deploy" in line for line in lines), lines
    finally:
        go_on.set()
        first.join(60)
    assert refusal and "does not match its published sha256" in refusal[0], refusal
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, "".join(lines) + err
    assert "deployed=" in out
    done = run_layer_python(target, "other")
    assert done.returncode == 0 and "other v1 says greetings v1" in done.stdout, done
    report = verify(target)
    assert report.ok, report.render()


# --- 5. archives that fit the free space one by one, not together -----------------------------

FREE = 4 << 20
FILLER = 3 << 20


@pytest.mark.parametrize("fresh", [True, False], ids=["fresh-target", "deployed-target"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_archives_fitting_the_free_space_one_by_one_but_not_together_are_refused(
    stacks: dict[str, Path],
    tmp_path: Path,
    outer: Path,
    fmt: str,
    fresh: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = outer / "deploy"
    if not fresh:
        deploy(stacks[fmt], target)
    source = second_version(stacks, fmt, tmp_path)
    for byte, app in enumerate((HELLO, APP)):
        # Different bytes in each: no file of one is in the store for the other.
        filler = tar_entry(f"{app}/filler.bin", data=bytes([byte]) * FILLER)
        replace_archive(source, app, [*with_added_file(stacks, app), filler])
    before = snapshot(outer)
    # As if the disk had 4 MiB free: each app (3 MiB) fits, the two do not.
    monkeypatch.setattr(preflight, "free_space", lambda _path: FREE)

    # app-hello unpacked (and placed) first: app-other is the one that does not fit.
    text = refused(source, target, **HoldLastApp().options())

    assert str(FREE) in text and "free" in text, text
    assert snapshot(outer) == before
    if fresh:
        assert not target.exists(), sorted(p.name for p in target.iterdir())
    else:
        assert leftovers(target) == []
    # Not vacuous: with the same free space, each app deploys on its own.
    deploy(source, target, apps=["hello"])
    deploy(source, target, apps=["other"])
    assert (target / APP / "filler.bin").stat().st_size == FILLER
    assert (target / HELLO / "filler.bin").stat().st_size == FILLER
