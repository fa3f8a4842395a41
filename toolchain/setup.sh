#!/usr/bin/env bash
# Installs everything cotrain's demo and tests need, from the PyPI and npm registries alone.
# Idempotent: a step whose inputs have not changed since its last success is skipped.
#
#   .venv/                   Python deps pinned in pyproject.toml (+ torch, see TORCH_REQUIREMENT)
#   .venv-core/              a second Python version (3.12 or 3.10) with only the consensus core's deps, where
#                            the tests run the protocol vectors again (skipped with a note if none is found)
#   toolchain/npm/           solc-js 0.8.37, anvil 1.7.1, OpenZeppelin contracts and merkle-tree
#   toolchain/ipfs/          js-ipfs daemon (Kubo-compatible HTTP API)
#   .venv/bin/{anvil,jsipfs} the two daemons, on the PATH of every make target
#   $SOLCX_BINARY_PATH/solc-v0.8.37 (default ~/.solcx)  the solc-js wrapper py-solc-x and brownie run
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

PYTHON=${PYTHON:-python3}
# Users who want another build of torch (e.g. a CUDA one) install it into .venv first, or set this.
TORCH_REQUIREMENT=${TORCH_REQUIREMENT:-torch==2.13.0}
SOLC_VERSION=0.8.37

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# A step runs again only when the hash of its inputs differs from the one stored after its last success.
inputs_hash() { cat "$@" | sha256sum | cut -d' ' -f1; }
up_to_date() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

command -v "$PYTHON" >/dev/null || die "$PYTHON not found: install Python 3.11 (3.10-3.12 work with brownie)."
command -v node >/dev/null || die "node not found: install Node.js 20 or newer (it runs solc-js and the daemons)."
command -v npm >/dev/null || die "npm not found: install it with Node.js."

# ---------------------------------------------------------------- Python
stamp=.venv/.cotrain-setup
want=$(printf '%s\n%s' "$TORCH_REQUIREMENT" "$(inputs_hash pyproject.toml)")
if up_to_date "$stamp" "$want"; then
  log "python: .venv up to date"
else
  [ -x .venv/bin/python ] || { log "python: creating .venv"; "$PYTHON" -m venv .venv; }
  log "python: installing $TORCH_REQUIREMENT and cotrain[dev] (first run: ~1-2 min)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet "$TORCH_REQUIREMENT"
  .venv/bin/python -m pip install --quiet -e ".[dev]"
  .venv/bin/python -m pip check
  printf '%s' "$want" > "$stamp"
fi

# ---------------------------------------------------------------- a second Python for the consensus core
# The round record must not depend on the interpreter: tests/node/protocol/test_other_python.py runs the test
# vectors under another version, in a venv holding only toolchain/requirements-core.txt (no torch).
core_python=${CORE_PYTHON:-}
if [ -z "$core_python" ]; then
  # A pyenv shim exists for every installed version but fails when that version is not selected: try each.
  for candidate in "$HOME"/.pyenv/versions/3.12*/bin/python "$HOME"/.pyenv/versions/3.10*/bin/python python3.12 python3.10; do
    if "$candidate" --version >/dev/null 2>&1; then core_python=$(command -v "$candidate"); break; fi
  done
fi
core_stamp=.venv-core/.cotrain-setup
if [ -z "$core_python" ]; then
  log "second python: no python3.12 or python3.10 found; the other-Python vector test will be skipped (set CORE_PYTHON)"
else
  want=$(printf '%s\n%s' "$core_python" "$(inputs_hash toolchain/requirements-core.txt)")
  if up_to_date "$core_stamp" "$want"; then
    log "second python: .venv-core up to date"
  else
    log "second python: .venv-core with $("$core_python" --version) and the core's deps (~15 s)"
    rm -rf .venv-core
    "$core_python" -m venv .venv-core
    .venv-core/bin/python -m pip install --quiet -r toolchain/requirements-core.txt
    printf '%s' "$want" > "$core_stamp"
  fi
fi

# ---------------------------------------------------------------- npm tools
npm_install() { # dir, npm command...
  local dir=$1; shift
  local npm_stamp=$dir/node_modules/.cotrain-setup
  local npm_want
  npm_want=$(inputs_hash "$dir/package.json" "$dir/package-lock.json")
  if up_to_date "$npm_stamp" "$npm_want"; then
    log "npm: $dir up to date"
    return
  fi
  log "npm: installing $dir"
  (cd "$dir" && npm "$@" --no-audit --no-fund --loglevel=error)
  printf '%s' "$npm_want" > "$npm_stamp"
}
npm_install toolchain/npm ci
# js-ipfs installs and starts only with its optional native deps left out (and the overrides in its
# package.json); `npm ci` would insist on an optional dependency's GitHub tarball, so install from the lock.
npm_install toolchain/ipfs install --omit=optional --no-save

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) anvil_pkg=anvil-linux-amd64 ;;
  Linux-aarch64) anvil_pkg=anvil-linux-arm64 ;;
  Darwin-arm64) anvil_pkg=anvil-darwin-arm64 ;;
  Darwin-x86_64) anvil_pkg=anvil-darwin-amd64 ;;
  *) die "no anvil build for $(uname -s)-$(uname -m)" ;;
esac
anvil_bin=$root/toolchain/npm/node_modules/@foundry-rs/$anvil_pkg/bin/anvil
[ -x "$anvil_bin" ] || die "anvil binary missing at $anvil_bin: rerun after deleting toolchain/npm/node_modules"
ln -sfn "$anvil_bin" .venv/bin/anvil
ln -sfn "$root/toolchain/ipfs/node_modules/.bin/jsipfs" .venv/bin/jsipfs

# ---------------------------------------------------------------- solc for py-solc-x / brownie
solcx_dir=${SOLCX_BINARY_PATH:-$HOME/.solcx}
mkdir -p "$solcx_dir"
solc_wrapper=$solcx_dir/solc-v$SOLC_VERSION
cat > "$solc_wrapper.tmp" <<EOF
#!/bin/sh
# Written by cotrain's toolchain/setup.sh: solc-js $SOLC_VERSION behind the solc command line py-solc-x expects.
# Several checkouts share one home: prefer the solc-js of the checkout being built, else the last set up.
solc_js=toolchain/npm/solc.js
[ -f "\$solc_js" ] && [ -d toolchain/npm/node_modules/solc ] || solc_js="$root/toolchain/npm/solc.js"
exec node "\$solc_js" "\$@"
EOF
chmod +x "$solc_wrapper.tmp"
mv "$solc_wrapper.tmp" "$solc_wrapper"
"$solc_wrapper" --version | grep -q "Version: $SOLC_VERSION" || die "the solc wrapper at $solc_wrapper does not answer --version"

# ---------------------------------------------------------------- brownie home
# brownie writes ~/.brownie on first import; doing it here keeps that out of the first test's time.
.venv/bin/python -c "import brownie" >/dev/null
log "ready: $(.venv/bin/anvil --version | head -n 1), solc $SOLC_VERSION (solc-js), $(.venv/bin/python -c 'import torch; print("torch", torch.__version__)')"
