#!/usr/bin/env bash
# Create .venv with a Python 3.12+ interpreter and install the pinned, tested dependency set.
# Idempotent: re-running after no change to pyproject.toml / constraints.txt does nothing.
# Environment: VENV (default .venv), PYTHON (an interpreter to use instead of searching).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
STAMP="$VENV/.setup-stamp"

is_supported() {  # $@: an interpreter command line; true if it runs and is Python >= 3.12
    "$@" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}

find_python() {
    if [[ -n "${PYTHON:-}" ]]; then
        is_supported "$PYTHON" && { echo "$PYTHON"; return; }
        echo "setup: PYTHON=$PYTHON is not a working Python >= 3.12" >&2; return 1
    fi
    local cand
    for cand in python3.13 python3.12 python3 python; do
        if command -v "$cand" >/dev/null 2>&1 && is_supported "$cand"; then
            command -v "$cand"; return
        fi
    done
    if command -v pyenv >/dev/null 2>&1; then
        local root version
        root=$(pyenv root)
        # newest installed CPython 3.12+ (plain x.y.z versions only)
        for version in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[2-9]|[2-9][0-9])\.[0-9]+$' | sort -t. -k1,1n -k2,2n -k3,3n -r); do
            if is_supported "$root/versions/$version/bin/python"; then
                echo "$root/versions/$version/bin/python"; return
            fi
        done
    fi
    cat >&2 <<'MSG'
setup: no Python >= 3.12 found (tried python3.13, python3.12, python3, python and pyenv versions).
       nautilus_trader 1.231 needs Python 3.12+. Install one (e.g. `pyenv install 3.12`) or
       point PYTHON at it: PYTHON=/path/to/python3.12 make demo
MSG
    return 1
}

want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [[ -x "$VENV/bin/python" ]] && is_supported "$VENV/bin/python" && [[ -f "$STAMP" ]] \
        && [[ "$(cat "$STAMP")" == "$want" ]]; then
    exit 0
fi

py=$(find_python)
echo "setup: using $py ($("$py" -V 2>&1)) -> $VENV"
if [[ ! -x "$VENV/bin/python" ]] || ! is_supported "$VENV/bin/python"; then
    rm -rf "$VENV"
    "$py" -m venv "$VENV"
fi
log="$VENV/setup.log"
echo "setup: installing the pinned dependency set (constraints.txt); the first run downloads torch (several GB)"
if ! { "$VENV/bin/python" -m pip install --quiet --upgrade pip \
        && "$VENV/bin/python" -m pip install --quiet -c constraints.txt -e ".[dev,docs]"; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "setup: pip failed; the full log is $log" >&2
    exit 1
fi
echo "$want" > "$STAMP"
echo "setup: done"
