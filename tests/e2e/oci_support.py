"""A real registry (Debian's docker-registry, the CNCF distribution registry) and podman,
started for the tests and stopped afterwards."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

TOOLS = ("docker-registry", "skopeo", "podman", "runc", "busybox")

CONTAINERS_CONF = """\
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
"""


def require_tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed (.ci/run installs them with apt-get:"
            " docker-registry skopeo podman runc busybox-static)"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RegistryServer:
    folder: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def storage(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "registry.log"

    def url(self, name: str) -> str:
        return f"oci://{self.host}/{name}"

    def log_lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def blob_gets(self, since: int = 0) -> list[str]:
        """The blob digests fetched with GET, from the access log lines after ``since``."""
        found = []
        for line in self.log_lines()[since:]:
            if '"GET /v2/' in line and "/blobs/sha256:" in line:
                found.append(line.split("/blobs/")[1].split(" ")[0].split("?")[0])
        return found

    def blob_file(self, digest: str) -> Path:
        hexdigest = digest.removeprefix("sha256:")
        return self.storage / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"


def start_registry(folder: Path, *, htpasswd: Path | None = None) -> RegistryServer:
    folder.mkdir(parents=True, exist_ok=True)
    server = RegistryServer(folder, free_port())
    auth = f"auth:\n  htpasswd:\n    realm: test-realm\n    path: {htpasswd}\n" if htpasswd else ""
    (folder / "config.yml").write_text(
        "version: 0.1\n"
        "log:\n  level: info\n"
        f"storage:\n  filesystem:\n    rootdirectory: {server.storage}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: {server.host}\n" + auth
    )
    with server.log.open("wb") as log:
        server.process = subprocess.Popen(
            ["docker-registry", "serve", str(folder / "config.yml")], stdout=log, stderr=log
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://{server.host}/v2/", timeout=2)
            return server
        except urllib.error.HTTPError:
            return server  # 401 from an authenticating registry: it is up
        except OSError:
            time.sleep(0.2)
    stop_registry(server)
    raise AssertionError(f"the registry did not start: {server.log.read_text()}")


def stop_registry(server: RegistryServer) -> None:
    if server.process is not None:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def htpasswd_file(path: Path, user: str, password: str) -> Path:
    """bcrypt, the one hash the distribution registry accepts."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

    hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))
    path.write_text(f"{user}:{hashed}\n")
    return path


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    require_tools()
    server = start_registry(tmp_path_factory.mktemp("registry"))
    yield server
    stop_registry(server)


@dataclass
class Podman:
    root: Path
    # podman refuses a run root path longer than 50 characters.
    runroot: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_CONF": str(self.root / "containers.conf")}

    def __call__(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        argv = ["podman", "--root", str(self.root / "storage"), "--runroot",
                str(self.runroot), "--storage-driver", "vfs", *args]  # fmt: skip
        result = subprocess.run(
            argv, input=input, capture_output=True, env=self.env(), timeout=600, check=False
        )
        out = subprocess.CompletedProcess(
            argv, result.returncode, result.stdout.decode(errors="replace"),
            result.stderr.decode(errors="replace"),
        )  # fmt: skip
        assert result.returncode == 0, f"{' '.join(argv)}\n{out.stderr}"
        return out


def podman(root: Path) -> Podman:
    root.mkdir(parents=True, exist_ok=True)
    (root / "containers.conf").write_text(CONTAINERS_CONF)
    return Podman(root, Path(tempfile.mkdtemp(prefix="vlpod-", dir="/tmp")))


def needed_libraries(folders: list[Path]) -> set[str]:
    """The host's shared libraries that the ELF files under ``folders`` load (from ldd)."""
    libraries: set[str] = set()
    for folder in folders:
        for path in folder.rglob("*"):
            if not path.is_file() or path.is_symlink():
                continue
            with path.open("rb") as stream:
                if stream.read(4) != b"\x7fELF":
                    continue
            result = subprocess.run(["ldd", str(path)], capture_output=True, text=True)
            for line in result.stdout.splitlines():
                parts = line.split()
                for word in parts:
                    if word.startswith("/") and not word.startswith(str(folder)):
                        libraries.add(word.split("(")[0])
    return libraries


def make_base_rootfs(rootfs: Path, deployed: Path) -> None:
    """busybox's sh and tools, plus the libraries the deployed layers need from the host."""
    (rootfs / "bin").mkdir(parents=True)
    busybox = rootfs / "bin" / "busybox"
    shutil.copy2(shutil.which("busybox") or "/bin/busybox", busybox)
    applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True).stdout
    for applet in applets.split():
        if applet != "busybox":
            (rootfs / "bin" / applet).symlink_to("busybox")
    (rootfs / "tmp").mkdir()
    for library in needed_libraries([deployed]):
        real = Path(library).resolve()
        for source in {Path(library), real}:
            dest = rootfs / str(source).lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not dest.exists():
                shutil.copy2(real, dest)
    # Debian's /lib64 and /lib are links into /usr: keep the paths ldd printed working.
