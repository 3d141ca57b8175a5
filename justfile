# siuo's two entry points. `./justw <recipe>` installs `just` if missing.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Run the whole pipeline offline on the built-in defaults; makes a release in curated/
run:
    cargo run --bin siuo -- run

# Everything CI checks: formatting, lints, and the whole test suite
test:
    cargo fmt --all --check
    cargo clippy --all-targets --quiet -- -D warnings
    cargo test --workspace

# Show runs, their stages and counts, and the releases
status:
    cargo run --bin siuo -- status
