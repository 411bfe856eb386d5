"""Policy gate throughput: time per resource for ``Analyze`` (the engine calls it before each
resource's step) and for ``AnalyzeStack`` (once, over everything), on a synthetic 10,000-resource
stack made of renamed copies of the real prod stack, as a first preview sees it.

Two views of the same analyzer:

- through gRPC, as the CLI drives it (``tools.policy_gate``): what a preview pays; it includes the
  gRPC round trip, measured on its own with the cheapest call (GetPluginInfo);
- in the analyzer (the pack's real policies in pulumi-policy's own servicer, run in the pack's
  virtualenv, requests already parsed): what the pack itself costs.

Targets: under 1 ms per resource for Analyze, under 1 s for the whole 10,000-resource AnalyzeStack
(the median of ``POLICY_BENCH_REPEATS`` calls, default 5). Beside it, in the analyzer, the SDK alone:
the same stack policies with checks that do nothing, i.e. what pulumi-policy spends rebuilding the
stack once per stack policy, which the pack cannot avoid through the SDK's API.
Figures only, nothing asserts. ``POLICY_BENCH_RESOURCES`` changes the stack's size. The last copy
of the prod stack is cut short to reach the exact size, so its instance lacks some of its backup
path: the stack rule has real findings to report.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from google.protobuf import json_format, struct_pb2
from rich.console import Console
from rich.table import Table

from tools.policy_gate import PACK_DIR, PACK_PYTHON, PolicyAnalyzer, policy_config_path
from tools.stack_render import REPO_ROOT, RegisteredResource, RenderedStack, render

DEFAULT_RESOURCES = 10_000
DEFAULT_REPEATS = 5
ANALYZE_TARGET_MS = 1.0
ANALYZE_STACK_TARGET_S = 1.0
PING_SAMPLES = 500
IN_PROCESS_SCRIPT = REPO_ROOT / "benchmarks" / "analyzer_in_process.py"
# Names the prod stack's resources share; each copy renames them, so the stack rule matches per copy.
_RENAMED = ("scheduling-prod", "sql-export-prod")


@dataclass(frozen=True)
class Timings:
    """Milliseconds for each Analyze call; seconds for each repeat of the AnalyzeStack call."""

    analyze_ms: list[float]
    analyze_stack_s: list[float]
    round_trip_ms: float | None = None
    sdk_alone_s: list[float] | None = None  # the stack policies' checks doing nothing


def synthetic_stack(base: RenderedStack, size: int) -> RenderedStack:
    """``size`` resources: renamed copies of ``base``'s, each copy a coherent stack of its own."""
    resources: list[RegisteredResource] = []
    copy_index = 0
    while len(resources) < size:
        rename = _renamer(copy_index)
        suffix = f"-copy-{copy_index}"  # keeps URNs unique, even without a renamed name in them
        resources.extend(
            _renamed(r, rename, suffix) for r in base.resources[: size - len(resources)]
        )
        copy_index += 1
    return replace(base, resources=resources)


def _renamer(index: int) -> Callable[[str], str]:
    def rename(text: str) -> str:
        for name in _RENAMED:
            text = text.replace(name, f"{name}-{index}")
        return text

    return rename


def _renamed(
    resource: RegisteredResource, rename: Callable[[str], str], suffix: str
) -> RegisteredResource:
    properties = struct_pb2.Struct()
    json_format.Parse(rename(json_format.MessageToJson(resource.properties)), properties)
    return replace(
        resource,
        name=resource.name + suffix,
        urn=resource.urn + suffix,
        parent=resource.parent + suffix if resource.parent else "",
        dependencies=[urn + suffix for urn in resource.dependencies],
        property_dependencies={
            prop: [urn + suffix for urn in urns]
            for prop, urns in resource.property_dependencies.items()
        },
        properties=properties,
    )


def through_grpc(stack: RenderedStack, repeats: int) -> Timings:
    """Timings as the CLI sees them; requests are built before the clock starts."""
    with PolicyAnalyzer(
        stack.stack, preview=stack.preview, policy_config=policy_config_path(stack.stack)
    ) as analyzer:
        requests = analyzer.analyze_requests(stack)
        stack_request = analyzer.analyze_stack_request(stack)
        for request in requests[:100]:  # warm up: imports, the cron schedule's evaluation
            analyzer.send_analyze(request)
        round_trip_ms = _mean_ms(analyzer.ping, PING_SAMPLES)
        analyze_ms = [_elapsed_ms(partial(analyzer.send_analyze, r)) for r in requests]
        analyze_stack_ms = [
            _elapsed_ms(partial(analyzer.send_analyze_stack, stack_request)) for _ in range(repeats)
        ]
        return Timings(analyze_ms, [ms / 1000 for ms in analyze_stack_ms], round_trip_ms)


def in_the_analyzer(stack: RenderedStack, repeats: int) -> Timings:
    """Timings of the pack in pulumi-policy's servicer, without transport (pack's virtualenv)."""
    with PolicyAnalyzer(stack.stack, preview=stack.preview) as analyzer:
        stack_request = analyzer.analyze_stack_request(stack)
    with tempfile.TemporaryDirectory() as folder:
        requests = Path(folder) / "stack.bin"
        requests.write_bytes(stack_request.SerializeToString())
        output = subprocess.run(
            [str(PACK_PYTHON), str(IN_PROCESS_SCRIPT), str(PACK_DIR), str(requests), str(repeats)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    figures = json.loads(output)
    return Timings(
        figures["analyze_ms"], figures["analyze_stack_s"], sdk_alone_s=figures["sdk_alone_s"]
    )


def _elapsed_ms(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def _mean_ms(call: Callable[[], object], samples: int) -> float:
    return statistics.fmean(_elapsed_ms(call) for _ in range(samples))


def _percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def report(title: str, resources: int, timings: Timings) -> Table:
    per = timings.analyze_ms
    mean = statistics.fmean(per)
    whole = statistics.median(timings.analyze_stack_s)
    repeats = len(timings.analyze_stack_s)
    table = Table(title=title)
    for column in ("measure", "value", "target", "met"):
        table.add_column(column)
    rows: list[tuple[str, str, str, bool | None]] = [
        (
            "Analyze, mean per resource",
            f"{mean:.3f} ms",
            f"< {ANALYZE_TARGET_MS:g} ms",
            mean < ANALYZE_TARGET_MS,
        ),
        (
            "Analyze, median / 95th percentile",
            f"{statistics.median(per):.3f} / {_percentile(per, 0.95):.3f} ms",
            "",
            None,
        ),
        ("Analyze, all resources", f"{sum(per) / 1000:.2f} s", "", None),
        (
            f"AnalyzeStack, whole stack (median of {repeats})",
            f"{whole:.3f} s",
            f"< {ANALYZE_STACK_TARGET_S:g} s",
            whole < ANALYZE_STACK_TARGET_S,
        ),
        ("AnalyzeStack, per resource", f"{whole / resources * 1e6:.1f} µs", "", None),
    ]
    if timings.sdk_alone_s is not None:
        rows.append(
            (
                "AnalyzeStack, SDK alone (checks doing nothing)",
                f"{statistics.median(timings.sdk_alone_s):.3f} s",
                "",
                None,
            )
        )
    if timings.round_trip_ms is not None:
        rows.append(
            ("gRPC round trip alone (GetPluginInfo)", f"{timings.round_trip_ms:.3f} ms", "", None)
        )
    for name, value, target, met in rows:
        table.add_row(name, value, target, "" if met is None else ("yes" if met else "no"))
    return table


def main() -> None:
    size = int(os.environ.get("POLICY_BENCH_RESOURCES", DEFAULT_RESOURCES))
    repeats = int(os.environ.get("POLICY_BENCH_REPEATS", DEFAULT_REPEATS))
    stack = synthetic_stack(render("prod", preview=True), size)
    console = Console()
    console.print(
        report(f"In the analyzer: {size:,} resources", size, in_the_analyzer(stack, repeats))
    )
    console.print(
        report(
            f"Through gRPC, as the CLI drives it: {size:,} resources",
            size,
            through_grpc(stack, repeats),
        )
    )
