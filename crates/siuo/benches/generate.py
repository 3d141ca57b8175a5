#!/usr/bin/env python3
"""Throughput of `siuo generate` against the emulator, and of distilabel.

For each latency shape (fixed, and log-normal with the same mean and p99
about 10x the median), runs N text-first candidates (one chat request and one
image request each) with at most C requests in flight against an emulator
whose answers take L ms on average, and prints the achieved request rate
over the limit C/L. Then runs distilabel (TextGeneration over OpenAILLM,
input_batch_size C) against the same emulator, same candidate count, same
in-flight limit, and prints the ratio of the two rates. Also prints siuo's
CPU time per candidate (user + system, whole process).

Rates are measured by the emulator, so start-up time of either tool does not
count, in two ways:
- sustained: answers sent up to the moment the last request arrived, over
  the time from the first request to then. This is the span in which a tool
  still has work to start; a pipeline that keeps C requests in flight reaches
  C/L here, one that waits for the slowest request of each batch does not.
- whole run: all answers over the time from the first request to the last
  answer. Under heavy tails this includes the final drain, the wait for the
  run's slowest answers, which no pipeline can avoid and which shrinks
  relative to the run as N grows.

Run through `just bench-generate`, which builds the binaries (release
profile) and installs distilabel into .venv-bench/ first.
"""

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
# Benchmarks measure an optimized build; SIUO_BENCH_PROFILE=debug measures the test build.
BIN = REPO / "target" / os.environ.get("SIUO_BENCH_PROFILE", "release")
VENV_PYTHON = REPO / ".venv-bench" / "bin" / "python"
KEY = "bench-key-not-secret"
SUBCATEGORIES = 33

DISTILABEL = r"""
import sys
from distilabel.pipeline import Pipeline
from distilabel.steps import LoadDataFromDicts
from distilabel.steps.tasks import TextGeneration
try:
    from distilabel.models import OpenAILLM
except ImportError:
    from distilabel.llms import OpenAILLM

base_url, count, in_flight, key = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
with Pipeline(name="siuo-bench") as pipeline:
    load = LoadDataFromDicts(
        data=[{"instruction": f"Write SIUO case {i} as JSON."} for i in range(count)],
        batch_size=in_flight,
    )
    generate = TextGeneration(
        llm=OpenAILLM(model="emulated-chat", base_url=base_url, api_key=key, timeout=120),
        input_batch_size=in_flight,
    )
    load >> generate
distiset = pipeline.run(use_cache=False)
rows = sum(len(split) for config in distiset.values() for split in config.values())
print(f"distilabel rows: {rows}", file=sys.stderr)
"""


def emulator(latency_ms: float, shape: str):
    process = subprocess.Popen(
        [BIN / "siuo-emulator", "--latency-ms", str(latency_ms), "--latency-shape", shape, "--api-key-env", "BENCH_KEY"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "BENCH_KEY": KEY},
    )
    line = process.stdout.readline().strip()
    return process, line.rsplit(" ", 1)[-1]


def control(base_url: str, path: str, method: str = "GET"):
    root = base_url.removesuffix("/v1")
    request = urllib.request.Request(root + path, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_siuo(base_url: str, candidates: int, in_flight: int) -> dict:
    project = Path(tempfile.mkdtemp(prefix="siuo-bench-"))
    shutil.copytree(REPO / "prompts", project / "prompts")
    requests = math.ceil(candidates / SUBCATEGORIES)
    (project / "siuo.yaml").write_text(
        f"""generate:
  type: openai
  mode: text-first
  api:
    base_url: {base_url}
    api_key_env: OPENAI_API_KEY
    chat_model: emulated-chat
    image_model: emulated-image
  limits:
    max_in_flight: {in_flight}
    timeout_seconds: 60
  requests_per_subcategory: {requests}
  candidates_per_request: 1
"""
    )
    before = children_cpu()
    started = time.monotonic()
    done = subprocess.run(
        [BIN / "siuo", "generate", "--quiet", "--json"],
        cwd=project,
        env={**os.environ, "OPENAI_API_KEY": KEY},
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - started
    cpu = children_cpu() - before
    shutil.rmtree(project, ignore_errors=True)
    if done.returncode != 0:
        sys.exit(f"siuo generate failed: {done.stderr}")
    report = json.loads(done.stdout)
    return {"candidates": report["kept"], "cpu": cpu, "wall": wall}


def run_distilabel(base_url: str, candidates: int, in_flight: int) -> bool:
    if not VENV_PYTHON.exists():
        print("  distilabel: not installed (.venv-bench missing); skipped")
        return False
    done = subprocess.run(
        [VENV_PYTHON, "-c", DISTILABEL, base_url, str(candidates), str(in_flight), KEY],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        print(f"  distilabel failed:\n{done.stderr[-3000:]}")
        return False
    return True


def report(tool: str, stats: dict, limit: float) -> dict:
    """Prints and returns a tool's request rates as the emulator saw them."""
    sustained = stats["completed_by_last_request"] / stats["seconds_to_last_request"]
    whole = stats["completed"] / stats["busy_seconds"]
    drain = stats["busy_seconds"] - stats["seconds_to_last_request"]
    print(
        f"  {tool + ':':<11} achieved/limit sustained {sustained / limit:.3f} ({sustained:.1f} req/s),"
        f" whole run {whole / limit:.3f} ({stats['completed']} requests in {stats['busy_seconds']:.2f} s,"
        f" final drain {drain:.2f} s); mean in flight {stats['request_seconds'] / stats['busy_seconds']:.1f},"
        f" served latency mean {1000 * stats['request_seconds'] / stats['requests']:.0f} ms"
    )
    return {"sustained": sustained, "whole": whole}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--skip-distilabel", action="store_true", help="measure siuo only")
    args = parser.parse_args()
    limit = args.in_flight / (args.latency_ms / 1000)
    candidates = math.ceil(args.candidates / SUBCATEGORIES) * SUBCATEGORIES
    print(f"N={candidates} candidates, C={args.in_flight} in flight, L={args.latency_ms:.0f} ms mean: limit C/L = {limit:.1f} requests/s")
    for shape in ["fixed", "heavy-tailed"]:
        process, base_url = emulator(args.latency_ms, shape)
        try:
            ours = run_siuo(base_url, candidates, args.in_flight)
            print(f"\n{shape} latency")
            rate = report("siuo", control(base_url, "/_emulator/stats"), limit)
            print(f"    siuo CPU (user + system): {1000 * ours['cpu'] / ours['candidates']:.2f} ms per candidate")
            control(base_url, "/_emulator/reset", "POST")
            if not args.skip_distilabel and run_distilabel(base_url, candidates, args.in_flight):
                theirs = report("distilabel", control(base_url, "/_emulator/stats"), limit)
                print(
                    f"  siuo/distilabel throughput ratio: sustained {rate['sustained'] / theirs['sustained']:.2f},"
                    f" whole run {rate['whole'] / theirs['whole']:.2f}"
                )
        finally:
            process.terminate()
            process.wait()


if __name__ == "__main__":
    main()
