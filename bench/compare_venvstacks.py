"""Benchmark venvlayers against venvstacks 0.8 on the same stack, side by side.

Run from the project root (a clean clone is enough)::

    python3 bench/compare_venvstacks.py [--work-dir DIR] [--write-docs] [--no-warmup]

Both tools lock, build, publish, rebuild (nothing changed) and deploy a pinned copy of
``examples/sklearn-demo`` with the same relocatable local CPython and the same package versions,
then run its apps from both deployments. Prints step times with the speed-up, archive bytes per
layer and deployed size, and whether the targets are met. ``--write-docs`` keeps the figures
in the "Comparison with venvstacks" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from _bench_proc import StepFailed, Timing, output_of, run_captured, run_logged
from _bench_report import ToolResult, best_of, docs_section, render, update_docs
from _bench_stack import (
    SPEC_NAME,
    build_name,
    copy_stack,
    read_pins,
    runtime_request,
    write_pinned_spec,
)
from _bench_tools import (
    VENVSTACKS_REQUIREMENT,
    Tools,
    find_uv,
    machine_facts,
    venvlayers_tool,
    venvstacks_tool,
)
from _venvstacks_deploy import app_command, published_layers
from _venvstacks_setup import pack_local_runtime, venvstacks_command

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
EXAMPLE = REPO / "examples" / "sklearn-demo"
DOCS = REPO / "docs" / "benchmarks.md"

METHOD = """\
Both tools lock, build, publish, rebuild (no input changed) and deploy the same stack: a copy
of `examples/sklearn-demo` (a runtime with numpy, a scikit-learn framework, two apps) whose
requirements are pinned to the versions in venvlayers' lock and whose runtime is pinned to the
exact local CPython. Both use the same interpreter: venvlayers' relocatable copy of the local
CPython (`VENVLAYERS_RUNTIME_SOURCE=local`, prepared into its runtime cache during setup),
handed to venvstacks as an `install_only` archive in place of its python-build-standalone
download (`bench/_venvstacks_wrapper.py`), which venvstacks unpacks as after a download.

uv cache: warm for both ({warmup}).
Times are {runs}, wall clock and CPU (user + system of the command and its
children). Targets are judged on wall clock; when other work shares the machine (see the
load average below) the CPU ratio is the steadier comparison.

venvstacks has no deploy command, so its deploy is what its documentation describes: unpack
every archive side by side (GNU tar) and run each layer's `postinstall.py`, runtime first.
venvlayers' is `venvlayers deploy`. "run apps" runs each app once from each deployment.
Archives are in each tool's default format. Reproduce with
`python3 bench/compare_venvstacks.py --write-docs`."""


@dataclass(frozen=True)
class Setup:
    """Everything both pipelines share, prepared before any timed step."""

    tools: Tools
    work: Path
    runtime_archive: Path
    runtime_version: str
    pins_dir: Path
    venvlayers_env: Mapping[str, str]
    venvstacks_env: Mapping[str, str]
    apps: tuple[str, ...]


def _log(work: Path, name: str) -> Path:
    return work / "logs" / f"{name}.log"


def prepare(work: Path) -> Setup:
    setup_log = _log(work, "setup")
    print("setup: tools", flush=True)
    uv = find_uv(REPO, work, setup_log)
    venvlayers, venvlayers_python = venvlayers_tool(REPO, work, uv, setup_log)
    tools = Tools(
        uv=uv,
        venvlayers=venvlayers,
        venvlayers_python=venvlayers_python,
        venvstacks_python=venvstacks_tool(REPO, work, uv, setup_log),
    )
    cache = work / "venvlayers-cache"
    venvlayers_env = {"VENVLAYERS_RUNTIME_SOURCE": "local", "VENVLAYERS_CACHE_DIR": str(cache)}
    # venvstacks leaves a copy of the runtime archive in the temp folder at every runtime
    # install: keep those inside the work folder.
    venvstacks_tmp = work / "venvstacks-tmp"
    venvstacks_tmp.mkdir(parents=True, exist_ok=True)

    print("setup: local runtime archive", flush=True)
    runtime_archive, runtime_version = pack_local_runtime(
        tools.venvlayers_python,
        runtime_request(EXAMPLE / SPEC_NAME),
        cache_dir=cache,
        output_dir=work / "runtime",
        log=setup_log,
    )

    spec = tomllib.loads((EXAMPLE / SPEC_NAME).read_text(encoding="utf-8"))
    return Setup(
        tools=tools,
        work=work,
        runtime_archive=runtime_archive,
        runtime_version=runtime_version,
        pins_dir=_pins(tools, work, venvlayers_env, setup_log),
        venvlayers_env=venvlayers_env,
        venvstacks_env={"TMPDIR": str(venvstacks_tmp)},
        apps=tuple(app["name"] for app in spec.get("applications", [])),
    )


def _pins(tools: Tools, work: Path, env: Mapping[str, str], log: Path) -> Path:
    """The example's lock summaries: committed beside it, else made by `venvlayers lock`."""
    committed = EXAMPLE / "requirements"
    if any(committed.glob("*/packages-*.txt")):
        return committed
    print("setup: locking the example with venvlayers for the pins", flush=True)
    folder = work / "pins"
    shutil.rmtree(folder, ignore_errors=True)
    spec = copy_stack(EXAMPLE, folder)
    run_logged([*tools.venvlayers, "lock", spec], log=log, what="venvlayers lock (pins)", env=env)
    return folder / "requirements"


def pinned_stack(setup: Setup, folder: Path) -> Path:
    """A fresh pinned copy of the example in ``folder``; its spec path."""
    shutil.rmtree(folder, ignore_errors=True)
    spec = copy_stack(EXAMPLE, folder / "stack")
    write_pinned_spec(spec, spec, read_pins(setup.pins_dir), setup.runtime_version)
    return spec


def _venvstacks(setup: Setup, *args: str | Path) -> list[str | Path]:
    return venvstacks_command(setup.tools.venvstacks_python, setup.runtime_archive, *args)


def _venvlayers(setup: Setup, *args: str | Path) -> list[str | Path]:
    return [*setup.tools.venvlayers, *args]


Step = tuple[str, Callable[[], Timing]]


def _run_steps(tool: str, steps: Sequence[Step]) -> tuple[dict[str, Timing], str | None]:
    """Time ``steps`` in order; stop at the first failure, which is returned."""
    times: dict[str, Timing] = {}
    for name, action in steps:
        print(f"{tool}: {name} ...", end=" ", flush=True)
        try:
            times[name] = action()
        except StepFailed as exc:
            print("FAILED", flush=True)
            return times, f"{name}: {exc}"
        print(f"{times[name].wall:.2f} s (CPU {times[name].cpu:.2f} s)", flush=True)
    return times, None


def _archives(artifacts: Path) -> tuple[dict[str, int], str]:
    try:
        layers = published_layers(artifacts)
    except (OSError, ValueError, KeyError):
        return {}, "?"
    sizes = {layer.layer_name: layer.archive.stat().st_size for layer in layers}
    fmt = layers[0].archive.name.removeprefix(layers[0].install_target + ".") if layers else "?"
    return sizes, fmt


def _du(folder: Path) -> int | None:
    if not folder.is_dir():
        return None
    out = subprocess.run(["du", "-s", "-B1", str(folder)], capture_output=True, text=True)
    return int(out.stdout.split()[0]) if out.returncode == 0 else None


def run_venvstacks(setup: Setup, root: Path) -> ToolResult:
    spec = pinned_stack(setup, root)
    artifacts, deployed = root / "artifacts", root / "deploy"
    env, log = setup.venvstacks_env, _log(setup.work, "venvstacks")
    outputs: dict[str, str] = {}

    def step(name: str, args: list[str | Path]) -> Step:
        return name, lambda: run_logged(args, log=log, what=f"venvstacks {name}", env=env)

    def run_apps() -> Timing:
        total = Timing(0.0, 0.0)
        by_layer = {layer.layer_name: layer for layer in published_layers(artifacts)}
        for app in setup.apps:
            command = app_command(deployed, by_layer[build_name("applications", app)])
            timing, outputs[app] = run_captured(command, log=log, what=f"venvstacks run {app}")
            total += timing
        return total

    times, failure = _run_steps(
        "venvstacks",
        [
            step("lock", _venvstacks(setup, "lock", spec)),
            step("build", _venvstacks(setup, "build", spec)),
            step("publish", _venvstacks(setup, "publish", "--output-dir", artifacts, spec)),
            step("rebuild (no-op)", _venvstacks(setup, "build", spec)),
            step("deploy", [sys.executable, BENCH / "_venvstacks_deploy.py", artifacts, deployed]),
            ("run apps", run_apps),
        ],
    )
    sizes, fmt = _archives(artifacts)
    return ToolResult(
        tool=VENVSTACKS_REQUIREMENT.replace("==", " "),
        times=times,
        archive_bytes=sizes,
        archive_format=fmt,
        deployed_bytes=_du(deployed),
        app_outputs=outputs,
        failure=failure,
    )


def run_venvlayers(setup: Setup, root: Path, version: str) -> ToolResult:
    spec = pinned_stack(setup, root)
    artifacts, deployed = root / "artifacts", root / "deploy"
    env, log = setup.venvlayers_env, _log(setup.work, "venvlayers")
    outputs: dict[str, str] = {}

    def step(name: str, *args: str | Path) -> Step:
        command = _venvlayers(setup, *args)
        return name, lambda: run_logged(command, log=log, what=f"venvlayers {name}", env=env)

    def run_apps() -> Timing:
        total = Timing(0.0, 0.0)
        for app in setup.apps:
            timing, outputs[app] = run_captured(
                _venvlayers(setup, "run", deployed, app), log=log, what=f"venvlayers run {app}"
            )
            total += timing
        return total

    times, failure = _run_steps(
        "venvlayers",
        [
            step("lock", "lock", spec),
            step("build", "build", spec),
            step("publish", "publish", "--output-dir", artifacts, spec),
            step("rebuild (no-op)", "build", spec),
            step("deploy", "deploy", artifacts, "--target", deployed),
            ("run apps", run_apps),
        ],
    )
    sizes, fmt = _archives(artifacts)
    return ToolResult(
        tool=version,
        times=times,
        archive_bytes=sizes,
        archive_format=fmt,
        deployed_bytes=_du(deployed),
        app_outputs=outputs,
        failure=failure,
    )


def warm_up(setup: Setup) -> None:
    """Lock and build once with each tool (not timed), so both find a warm uv cache."""
    root = setup.work / "warmup"
    for tool, command, env in (
        ("venvstacks", _venvstacks, setup.venvstacks_env),
        ("venvlayers", _venvlayers, setup.venvlayers_env),
    ):
        print(f"warm-up: {tool} lock + build", flush=True)
        spec = pinned_stack(setup, root / tool)
        for verb in ("lock", "build"):
            try:
                run_logged(
                    command(setup, verb, spec),
                    log=_log(setup.work, f"warmup-{tool}"),
                    what=f"warm-up {tool} {verb}",
                    env=env,
                )
            except StepFailed as exc:
                print(f"warm-up: {exc.args[0].splitlines()[0]} (the timed run will report it)")
                break
    shutil.rmtree(root, ignore_errors=True)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, help="work folder (default: a new temp folder)")
    parser.add_argument("--write-docs", action="store_true", help=f"update {DOCS.name}")
    parser.add_argument("--no-warmup", action="store_true", help="skip the warm-up pass")
    parser.add_argument(
        "--repeat", type=int, default=1, help="run both pipelines N times; keep each step's best"
    )
    args = parser.parse_args(argv)

    temporary = args.work_dir is None
    work = (
        Path(tempfile.mkdtemp(prefix="compare-venvstacks-"))
        if temporary
        else args.work_dir.resolve()
    )
    work.mkdir(parents=True, exist_ok=True)
    print(f"work folder: {work}", flush=True)
    try:
        setup = prepare(work)
    except StepFailed as exc:
        print(f"setup failed: {exc}", file=sys.stderr)
        return 1
    if not args.no_warmup:
        warm_up(setup)
    venvlayers_version = "venvlayers " + output_of(
        [setup.tools.venvlayers_python, "-c", "import venvlayers; print(venvlayers.__version__)"]
    )
    machine = machine_facts(setup.tools, setup.runtime_version)
    machine["load average (1/5/15 min) before the timed runs"] = "/".join(
        f"{load:.1f}" for load in os.getloadavg()
    )
    vs_runs: list[ToolResult] = []
    vl_runs: list[ToolResult] = []
    for _ in range(max(args.repeat, 1)):
        vs_runs.append(run_venvstacks(setup, work / "run" / "venvstacks"))
        vl_runs.append(run_venvlayers(setup, work / "run" / "venvlayers", venvlayers_version))
        if vs_runs[-1].failure or vl_runs[-1].failure:
            break
    vs, vl = best_of(vs_runs), best_of(vl_runs)

    print()
    print(render(vs, vl))
    if args.write_docs:
        warmup = "state as found: no warm-up pass" if args.no_warmup else "after a warm-up pass"
        runs = (
            "from one run of each command"
            if len(vs_runs) == 1
            else f"each step's best of {len(vs_runs)} runs"
        )
        method = METHOD.format(warmup=warmup, runs=runs)
        update_docs(DOCS, docs_section(vs, vl, machine, method))
        print(f"\nwrote the figures to {DOCS}")
    failed = bool(vs.failure or vl.failure)
    if temporary and not failed:
        shutil.rmtree(work, ignore_errors=True)
    elif failed:
        print(f"logs kept in {work / 'logs'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
