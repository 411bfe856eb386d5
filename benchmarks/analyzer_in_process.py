"""Times the policy pack inside pulumi-policy's own analyzer servicer, without gRPC transport.

Run by ``benchmarks/policy_gate.py`` with the pack's interpreter (``policies/venv/bin/python``),
which has pulumi-policy: ``analyzer_in_process.py <pack dir> <serialized AnalyzeStackRequest>
<repeats>``. Prints JSON: milliseconds per Analyze call; seconds for each AnalyzeStack call; and the
same for the SDK alone: the pack's stack policies with checks that do nothing, which is what
pulumi-policy itself costs for them (it rebuilds the stack once per stack policy).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def main(pack_dir: str, requests_file: str, repeats: str) -> None:
    sys.path.insert(0, pack_dir)
    import pack  # noqa: PLC0415 - the pack's modules live in pack_dir
    import sdk_cache  # noqa: PLC0415
    from pulumi.runtime.proto import analyzer_pb2  # noqa: PLC0415 - only in the pack's venv
    from pulumi_policy import StackValidationPolicy  # noqa: PLC0415
    from pulumi_policy.policy import EnforcementLevel, _PolicyAnalyzerServicer  # noqa: PLC0415

    sdk_cache.install()  # as the pack's __main__ does
    servicer: Any = _PolicyAnalyzerServicer(
        pack.NAME, "0.0.1", pack.all_policies(), EnforcementLevel.MANDATORY
    )
    stack_request = analyzer_pb2.AnalyzeStackRequest()
    stack_request.ParseFromString(Path(requests_file).read_bytes())
    requests = [
        analyzer_pb2.AnalyzeRequest(
            type=r.type,
            name=r.name,
            urn=r.urn,
            properties=r.properties,
            options=r.options,
            provider=r.provider if r.HasField("provider") else None,
        )
        for r in stack_request.resources
    ]
    for request in requests[:100]:  # warm up, as through gRPC
        servicer.Analyze(request, None)
    analyze_ms = []
    for request in requests:
        start = time.perf_counter()
        servicer.Analyze(request, None)
        analyze_ms.append((time.perf_counter() - start) * 1000)
    sdk_alone: Any = _PolicyAnalyzerServicer(
        pack.NAME,
        "0.0.1",
        [
            StackValidationPolicy(name=p.name, description=p.description, validate=_nothing)
            for p in pack.all_policies()
            if isinstance(p, StackValidationPolicy)
        ],
        EnforcementLevel.MANDATORY,
    )
    figures = {
        "analyze_ms": analyze_ms,
        "analyze_stack_s": _seconds(servicer, stack_request, int(repeats)),
        "sdk_alone_s": _seconds(sdk_alone, stack_request, int(repeats)),
    }
    print(json.dumps(figures))


def _nothing(_: Any, __: Any) -> None:
    """A stack check that looks at nothing: what is left is the SDK's own work."""


def _seconds(servicer: Any, stack_request: Any, repeats: int) -> list[float]:
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        servicer.AnalyzeStack(stack_request, None)
        timings.append(time.perf_counter() - start)
    return timings


if __name__ == "__main__":
    main(*sys.argv[1:4])
