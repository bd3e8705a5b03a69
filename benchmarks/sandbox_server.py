"""Serve the sandbox in its own process for the benchmarks and report its counters on request.

Run by ``benchmarks/run.py``: it is ``biteral-import sandbox`` (the same ``start_sandbox``), plus a
tiny control channel on standard input so the benchmark can read what the server saw. Prints one
line ``URL <url>``; then each ``stats`` line on stdin is answered with one JSON line of counters;
end of input (or ``quit``) stops the server.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from biteral_cli.sandbox import SandboxSettings, running_sandbox
from biteral_cli.sandbox.validation.places import warm_up


def main(argv: list[str] | None = None) -> int:
    """Serve until stdin closes, answering ``stats`` with the sandbox's counters as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=0)
    parser.add_argument("--rate-limit", type=float, default=None)
    args = parser.parse_args(argv)
    settings = SandboxSettings(port=0, latency_ms=args.latency_ms, rate_limit=args.rate_limit)
    warm_up()  # as `biteral-import sandbox` does: no index built inside the measured window
    with running_sandbox(settings) as sandbox:
        print(f"URL {sandbox.url}", flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "quit":
                break
            if command == "stats":
                counters = asdict(sandbox.stats)
                counters["status_counts"] = {str(k): v for k, v in counters["status_counts"].items()}
                print(json.dumps(counters), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
