#!/usr/bin/env python3
"""How siuo's cost grows with the size of a project.

For each size N (default 1k, 10k, 100k candidates), builds one project that
talks to a zero-latency emulator: text-first generation (one chat and one
image request per candidate, so every image is distinct), the lexicon text
check, the image validator and the emulator's moderation endpoint for both
modalities, near dedupe against releases, a one-juror jury and a one-model
difficulty panel. It runs every stage as its own command and prints each
one's wall time and peak RSS (the child's ru_maxrss from wait4).

Then it grows a history: nine more small runs (N/100 new candidates each, a
new generator seed each), so the project holds ten releases, and measures
`status`, a no-op `run`, `verify` of every release, `diff` of the last two
and the last `export` on that history.

Last it prints the ratios between consecutive sizes: linear cost is a 10x
ratio for a 10x size.

Run through `just bench-scale`, which builds the release binaries first.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
BIN = REPO / "target" / os.environ.get("SIUO_BENCH_PROFILE", "release")
SUBCATEGORIES = 33
STAGES = ["generate", "check", "dedupe", "verify", "difficulty", "export"]


def emulator():
    process = subprocess.Popen([BIN / "siuo-emulator"], stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline().strip()
    return process, line.rsplit(" ", 1)[-1]


def config(url: str, per_subcategory: int, seed: int) -> str:
    limits = "{max_in_flight: 32, timeout_seconds: 60}"
    remote = f"    - type: openai-moderation\n      base_url: {url}\n      model: omni-moderation-latest\n      limits: {limits}\n"
    return f"""generate:
  type: openai
  mode: text-first
  api:
    base_url: {url}
    chat_model: emulated-chat
    image_model: emulated-image
  seed: {seed}
  limits: {limits}
  requests_per_subcategory: {per_subcategory}
  candidates_per_request: 1
check:
  text:
    - type: lexicon
      path: prompts/lexicon.yaml
{remote}  image:
    - type: validator
{remote}dedupe:
  type: near
  against_releases: true
verify:
  type: jury
  quorum: majority
  jurors:
    - name: alpha
      base_url: {url}
      model: emulated-judge
      limits: {limits}
difficulty:
  type: panel
  targets:
    - name: target
      api: {{base_url: "{url}", model: always-comply}}
      samples: 1
      limits: {limits}
  judge:
    api: {{base_url: "{url}", model: siuo-judge}}
    limits: {limits}
  min_difficulty: 0.0
  min_failing_models: 0
"""


def run_measured(project: Path, *args: str) -> dict:
    """Runs `siuo ARGS` through a tiny wrapper process that reports the
    peak RSS of exactly that command (ru_maxrss of its only child)."""
    wrapper = (
        "import os,resource,subprocess,sys,time;"
        "t=time.monotonic();r=subprocess.run(sys.argv[1:],capture_output=True);"
        "w=time.monotonic()-t;u=resource.getrusage(resource.RUSAGE_CHILDREN);"
        "sys.stderr.buffer.write(r.stderr);sys.stdout.buffer.write(r.stdout);"
        "print(f'\\n@@bench {w} {u.ru_maxrss}',file=sys.stderr);sys.exit(r.returncode)"
    )
    done = subprocess.run(
        [sys.executable, "-c", wrapper, str(BIN / "siuo"), "--quiet", *args],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000"},
    )
    marker = [line for line in done.stderr.splitlines() if line.startswith("@@bench ")]
    if done.returncode != 0 or not marker:
        sys.exit(f"siuo {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    _, wall, rss_kb = marker[-1].split()
    return {"wall": float(wall), "rss_mb": int(rss_kb) / 1024, "stdout": done.stdout}


def latest_versions(project: Path) -> list:
    versions = [p.name for p in (project / "curated").iterdir() if p.is_dir() and p.name.startswith("v")]
    return sorted(versions, key=lambda v: tuple(int(x) for x in v[1:].split(".")))


def grow(url: str, size: int, keep: bool) -> dict:
    project = Path(tempfile.mkdtemp(prefix=f"siuo-scale-{size}-"))
    shutil.copytree(REPO / "prompts", project / "prompts")
    per_subcategory = math.ceil(size / SUBCATEGORIES)
    (project / "siuo.yaml").write_text(config(url, per_subcategory, 0))
    figures = {}
    for stage in STAGES:
        figures[stage] = run_measured(project, stage)
        print(f"  N={size}: {stage:<10} {figures[stage]['wall']:8.2f} s {figures[stage]['rss_mb']:7.0f} MB", flush=True)
    candidates = json.loads(run_measured(project, "status", "--json")["stdout"])
    # Nine more small runs: ten releases.
    small = max(1, math.ceil(per_subcategory / 100))
    for seed in range(1, 10):
        (project / "siuo.yaml").write_text(config(url, small, 1_000_000 * seed))
        if seed < 9:
            run_measured(project, "run")
        else:
            # The stages before export, then export alone, measured.
            run_measured(project, "merge", "difficulty")
            figures["export (10th release)"] = run_measured(project, "export")
    versions = latest_versions(project)
    if len(versions) != 10:
        sys.exit(f"expected ten releases, found {versions}")
    for name, args in [
        ("status", ["status"]),
        ("no-op run", ["run"]),
        ("verify (releases)", ["verify-release"]),
        ("diff", ["diff", *versions[-2:]]),
    ]:
        figures[name] = run_measured(project, *args)
        print(f"  N={size}: {name:<10} {figures[name]['wall']:8.2f} s {figures[name]['rss_mb']:7.0f} MB", flush=True)
    figures["candidates"] = candidates
    if keep:
        print(f"  kept project: {project}")
    else:
        shutil.rmtree(project, ignore_errors=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--keep", action="store_true", help="keep the projects for inspection")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    process, url = emulator()
    try:
        table = {size: grow(url, size, args.keep) for size in sizes}
    finally:
        process.terminate()
        process.wait()
    rows = [*STAGES, "export (10th release)", "status", "no-op run", "verify (releases)", "diff"]
    header = f"{'step':<22}" + "".join(f"{f'N={s}':>22}" for s in sizes)
    header += "".join(f"{f'{b}/{a}':>14}" for a, b in zip(sizes, sizes[1:]))
    print("\nwall time (s) and peak RSS (MB) per command")
    print(header)
    for row in rows:
        line = f"{row:<22}"
        for size in sizes:
            f = table[size][row]
            line += f"{f['wall']:>12.2f} s {f['rss_mb']:>5.0f} MB"
        for a, b in zip(sizes, sizes[1:]):
            ratio = table[b][row]["wall"] / max(table[a][row]["wall"], 1e-9)
            line += f"{ratio:>13.1f}x"
        print(line)


if __name__ == "__main__":
    main()
