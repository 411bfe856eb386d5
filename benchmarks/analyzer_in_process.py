"""Times the policy pack inside pulumi-policy's own analyzer servicer, without gRPC transport.

Run by ``benchmarks/policy_gate.py`` with the pack's interpreter (``policies/venv/bin/python``),
which has pulumi-policy: ``analyzer_in_process.py <pack dir> <serialized AnalyzeStackRequest>``.
Prints JSON: milliseconds per Analyze call, seconds for the AnalyzeStack call.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def main(pack_dir: str, requests_file: str) -> None:
    sys.path.insert(0, pack_dir)
    import pack  # noqa: PLC0415 - the pack's modules live in pack_dir
    import sdk_cache  # noqa: PLC0415
    from pulumi.runtime.proto import analyzer_pb2  # noqa: PLC0415 - only in the pack's venv
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
    start = time.perf_counter()
    servicer.AnalyzeStack(stack_request, None)
    analyze_stack_s = time.perf_counter() - start
    print(json.dumps({"analyze_ms": analyze_ms, "analyze_stack_s": analyze_stack_s}))


if __name__ == "__main__":
    main(*sys.argv[1:3])
