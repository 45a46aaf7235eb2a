# Sourced by the hack/ scripts: shared cache locations.
# Build outputs live outside the clone so a fresh clone on the same machine starts warm.
M2M_CACHE_DIR=${M2M_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/m2m-operator}
export M2M_CACHE_DIR
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$M2M_CACHE_DIR/cargo-target}
command -v cargo >/dev/null 2>&1 || { echo "error: cargo (Rust) is required; install it with rustup" >&2; exit 1; }
