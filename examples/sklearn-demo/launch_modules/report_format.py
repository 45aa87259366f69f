"""Formatting shared by the cluster report (a support module)."""

from tabulate import tabulate


def render(sizes: list[tuple[int, int]]) -> str:
    table = tabulate(sizes, headers=["cluster", "samples"], tablefmt="github")
    return f"cluster-report: {len(sizes)} clusters\n{table}"
