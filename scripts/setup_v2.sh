#!/usr/bin/env bash
# Create .venv-v2: NautilusTrader 2.0 (constraints-v2.txt) beside the 1.231 venv (.venv).
# .venv-v2 holds nautilus_trader 2.0 only; a .pth file puts .venv's site-packages after its own,
# so every other package (torch included) is the 1.231 venv's copy and nautilus_trader 2.0 is
# found first. Needs .venv (scripts/setup.sh). Idempotent, like scripts/setup.sh.
# Environment: VENV (default .venv), VENV2 (default .venv-v2).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
VENV2=${VENV2:-.venv-v2}
STAMP="$VENV2/.setup-stamp"

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "setup-v2: $VENV is missing; run scripts/setup.sh (make setup) first" >&2
    exit 1
fi
base_site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
want=$( { cat constraints-v2.txt scripts/setup_v2.sh; echo "$PWD $base_site"; cat "$VENV/.setup-stamp" 2>/dev/null; } \
    | sha256sum | cut -d' ' -f1)
if [[ -x "$VENV2/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    exit 0
fi

# the same interpreter as .venv: the shared packages are built for its Python version
base_python=$("$VENV/bin/python" -c 'import sys; print(sys._base_executable)')
echo "setup-v2: $base_python -> $VENV2 (nautilus_trader 2.0, the rest shared with $VENV)"
rm -rf "$VENV2"
"$base_python" -m venv "$VENV2"
site2=$("$VENV2/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# the project itself (as .venv's editable install), then .venv's packages
printf '%s\n%s\n' "$PWD" "$base_site" > "$site2/_shared_with_1231_venv.pth"
log="$VENV2/setup.log"
# --no-deps: nautilus_trader 2.0 declares none, and pip would otherwise report the project's
# own nautilus_trader<1.232 requirement (installed in .venv) as a conflict
if ! "$VENV2/bin/python" -m pip install --quiet --no-deps --pre -r constraints-v2.txt \
        >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "setup-v2: pip failed; the full log is $log" >&2
    exit 1
fi
version=$("$VENV2/bin/python" -c 'import nautilus_trader, torch; print(nautilus_trader.__version__)')
echo "$want" > "$STAMP"
echo "setup-v2: done (nautilus_trader $version)"
