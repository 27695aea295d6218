#!/usr/bin/env bash
# The simnet.aio tests on every other Python the project supports (asyncio's internals differ:
# 3.12 writes through sendmsg, 3.13 changed the loop again). Each gets its own venv, rebuilt when
# pyproject.toml changes. A Python that is not installed is skipped with a message; CI machines
# have pyenv's 3.12 and 3.13.
set -euo pipefail
cd "$(dirname "$0")/../.."
status=0
for version in ${AIO_PYTHONS:-3.12 3.13}; do
    python=""
    for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version"*/bin/python"$version"; do
        [ -x "$candidate" ] && python="$candidate"
    done
    if [ -z "$python" ] && command -v "python$version" >/dev/null && "python$version" -c '' 2>/dev/null; then
        python="$(command -v "python$version")"
    fi
    if [ -z "$python" ]; then
        echo "tests/aio on Python $version: SKIPPED (python$version is not installed)"
        continue
    fi
    venv=".venv-$version"
    if [ ! -f "$venv/.installed" ] || [ pyproject.toml -nt "$venv/.installed" ]; then
        rm -rf "$venv"
        "$python" -m venv "$venv"
        "$venv/bin/pip" install --quiet --upgrade pip
        # Pure Python there: what runs where nothing is compiled for that Python (a 3.11 build's
        # extensions beside the sources are not loaded by another version).
        SIMNET_PURE_PYTHON=1 "$venv/bin/pip" install --quiet -e '.[test]'
        touch "$venv/.installed"
    fi
    echo "tests/aio on Python $version ($python):"
    # No -e install's path tricks: run from the checkout, as the main suite does.
    if ! "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/aio; then
        status=1
    fi
done
exit $status
