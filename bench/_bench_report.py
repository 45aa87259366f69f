"""Figures side by side: step times, archive bytes, deployed size, and the targets they meet."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from _bench_proc import Timing

STEPS = ("lock", "build", "publish", "rebuild (no-op)", "deploy", "run apps")
SECTION_BEGIN = "<!-- compare-venvstacks:begin (bench/compare_venvstacks.py --write-docs) -->"
SECTION_END = "<!-- compare-venvstacks:end -->"
SECTION_TITLE = "## Comparison with venvstacks"


@dataclass(frozen=True)
class ToolResult:
    """What one tool did with the stack. Missing figures mean the tool failed before them."""

    tool: str
    times: Mapping[str, Timing]  # step -> time
    archive_bytes: Mapping[str, int]  # layer name -> archive size
    archive_format: str
    deployed_bytes: int | None
    app_outputs: Mapping[str, str]  # app name -> its output
    failure: str | None


@dataclass(frozen=True)
class Target:
    name: str
    goal: str
    measured: str  # on wall-clock time, which decides ``met``
    cpu_measured: str
    met: bool | None  # None: not measured


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def _times(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.2f}x"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _wall(result: ToolResult, step: str) -> float | None:
    timing = result.times.get(step)
    return None if timing is None else timing.wall


def _cpu(result: ToolResult, step: str) -> float | None:
    timing = result.times.get(step)
    return None if timing is None else timing.cpu


def best_of(runs: list[ToolResult]) -> ToolResult:
    """One result from repeated runs: each step's fastest time (the least disturbed by other
    work on the machine); sizes, outputs and failure from the last run."""
    last = runs[-1]
    times = {
        step: Timing(
            min(run.times[step].wall for run in runs if step in run.times),
            min(run.times[step].cpu for run in runs if step in run.times),
        )
        for step in STEPS
        if any(step in run.times for run in runs)
    }
    failure = next((run.failure for run in runs if run.failure), None)
    return ToolResult(
        tool=last.tool,
        times=times,
        archive_bytes=last.archive_bytes,
        archive_format=last.archive_format,
        deployed_bytes=last.deployed_bytes,
        app_outputs=last.app_outputs,
        failure=failure,
    )


def _bytes(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,}"


def _mb(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 1e6:.1f} MB"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def times_table(vs: ToolResult, vl: ToolResult) -> str:
    rows = [
        [
            step,
            _secs(_wall(vs, step)),
            _secs(_wall(vl, step)),
            _times(_ratio(_wall(vs, step), _wall(vl, step))),
            _secs(_cpu(vs, step)),
            _secs(_cpu(vl, step)),
            _times(_ratio(_cpu(vs, step), _cpu(vl, step))),
        ]
        for step in STEPS
    ]
    header = [
        "step", f"{vs.tool} wall", f"{vl.tool} wall", "speed-up (wall)",
        "venvstacks CPU", "venvlayers CPU", "CPU ratio",
    ]  # fmt: skip
    return _table(header, rows)


def _total(result: ToolResult) -> int | None:
    return sum(result.archive_bytes.values()) if result.archive_bytes else None


def _total_ratio(vs: ToolResult, vl: ToolResult) -> float | None:
    """venvlayers' archive bytes over venvstacks', when both published the same layers."""
    if set(vs.archive_bytes) != set(vl.archive_bytes):
        return None
    return _ratio(_total(vl), _total(vs))


def sizes_table(vs: ToolResult, vl: ToolResult) -> str:
    layers = list(dict.fromkeys([*vs.archive_bytes, *vl.archive_bytes]))
    rows = [
        [
            f"archive {layer}",
            _bytes(vs.archive_bytes.get(layer)),
            _bytes(vl.archive_bytes.get(layer)),
            _times(_ratio(vl.archive_bytes.get(layer), vs.archive_bytes.get(layer))),
        ]
        for layer in layers
    ]
    rows.append(
        [
            f"archives total ({vs.archive_format} / {vl.archive_format})",
            _bytes(_total(vs)),
            _bytes(_total(vl)),
            _times(_total_ratio(vs, vl)),
        ]
    )
    rows.append(
        [
            "deployed size on disk (du)",
            _mb(vs.deployed_bytes),
            _mb(vl.deployed_bytes),
            _times(_ratio(vl.deployed_bytes, vs.deployed_bytes)),
        ]
    )
    return _table(["bytes", vs.tool, vl.tool, "venvlayers / venvstacks"], rows)


def targets(vs: ToolResult, vl: ToolResult) -> list[Target]:
    def speed(step: str, goal: float, text: str) -> Target:
        ratio = _ratio(_wall(vs, step), _wall(vl, step))
        cpu_ratio = _ratio(_cpu(vs, step), _cpu(vl, step))
        met = None if ratio is None else ratio >= goal
        return Target(step, text, f"{_times(ratio)} faster", f"{_times(cpu_ratio)} less", met)

    size_ratio = _total_ratio(vs, vl)
    return [
        speed("publish", 10.0, "at least 10x faster"),
        speed("deploy", 2.0, "at least 2x faster"),
        Target(
            "archives",
            "at most 1.2x the bytes",
            f"{_times(size_ratio)} the bytes",
            "",
            None if size_ratio is None else size_ratio <= 1.2,
        ),
        speed("lock", 1.0, "no slower"),
        speed("build", 1.0, "no slower"),
    ]


def targets_table(found: list[Target]) -> str:
    verdict = {True: "met", False: "NOT met", None: "not measured"}
    return _table(
        ["target", "goal", "measured (wall)", "verdict", "CPU time"],
        [[t.name, t.goal, t.measured, verdict[t.met], t.cpu_measured] for t in found],
    )


def apps_summary(vs: ToolResult, vl: ToolResult) -> str:
    lines = []
    for app in dict.fromkeys([*vs.app_outputs, *vl.app_outputs]):
        first = vl.app_outputs.get(app) or vs.app_outputs.get(app) or ""
        same = vs.app_outputs.get(app) == vl.app_outputs.get(app)
        verdict = "same output from both deployments" if same else "OUTPUTS DIFFER"
        lines.append(f"- `{app}`: {verdict}: `{first.splitlines()[0] if first else ''}`")
    return "\n".join(lines) or "- no app ran"


def render(vs: ToolResult, vl: ToolResult) -> str:
    """The console report."""
    parts = [times_table(vs, vl), "", sizes_table(vs, vl), "", targets_table(targets(vs, vl))]
    parts += ["", "Apps:", apps_summary(vs, vl)]
    for result in (vs, vl):
        if result.failure:
            parts += ["", f"{result.tool} FAILED: {result.failure}"]
    return "\n".join(parts)


def docs_section(vs: ToolResult, vl: ToolResult, machine: Mapping[str, str], method: str) -> str:
    """The markdown section ``--write-docs`` keeps in docs/benchmarks.md."""
    facts = "\n".join(f"- {key}: {value}" for key, value in machine.items())
    failures = "".join(
        f"\n\n**{r.tool} failed**: `{r.failure.splitlines()[0]}`" for r in (vs, vl) if r.failure
    )
    return "\n".join(
        [
            SECTION_BEGIN,
            SECTION_TITLE,
            "",
            method,
            "",
            "Machine:",
            "",
            facts,
            "",
            "### Step times",
            "",
            times_table(vs, vl),
            "",
            "### Archives and deployed size",
            "",
            sizes_table(vs, vl),
            "",
            "### Targets",
            "",
            targets_table(targets(vs, vl)) + failures,
            "",
            "### Apps",
            "",
            apps_summary(vs, vl),
            SECTION_END,
        ]
    )


def update_docs(path: Path, section: str) -> None:
    """Put ``section`` in ``path`` in place of its previous version; other sections untouched."""
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmarks\n"
    start, end = text.find(SECTION_BEGIN), text.find(SECTION_END)
    if start != -1 and end > start:
        text = text[:start] + section + text[end + len(SECTION_END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
