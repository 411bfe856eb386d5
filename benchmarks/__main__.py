"""``make bench``: every benchmark, one after the other; each prints its own figures."""

from __future__ import annotations

from benchmarks import export_verify, policy_gate, restore


def main() -> None:
    for benchmark in (policy_gate, restore, export_verify):
        print(f"\n== {benchmark.__name__} ==", flush=True)
        benchmark.main()


if __name__ == "__main__":
    main()
