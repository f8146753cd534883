#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment with everything it needs.
#
# torch is installed *before* anything else, chosen by scripts/torch_plan.py: on Linux without an
# NVIDIA GPU a CPU build from the PyTorch CPU index (a bare `torch` from the default index would
# pull several GB of CUDA packages), falling back to the default index with one line saying so;
# with a GPU the default build. The installed distribution's version is then written to a
# constraints file so no later step can swap it.
#   INSTRUCTKIT_TORCH="torch==2.5.1"                               the torch requirement
#   INSTRUCTKIT_TORCH_INDEX=https://download.pytorch.org/whl/cpu   the index torch comes from
set -euo pipefail
venv="${1:-.venv}"
python="${PYTHON:-python3}"
here="$(cd "$(dirname "$0")" && pwd)"

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)

"$venv/bin/python" "$here/torch_plan.py" install
"$venv/bin/python" "$here/torch_plan.py" constraints > "$venv/constraints.txt"

echo "bootstrap: installing instructkit and its example plugin" >&2
# The build tools are installed first so the installs below can skip build isolation (wheel and
# setuptools: rouge-score ships only an sdist, and Python 3.12+ venvs have no setuptools).
"${pip[@]}" -c "$venv/constraints.txt" hatchling editables setuptools wheel
"${pip[@]}" -c "$venv/constraints.txt" --no-build-isolation -e ".[train,dev]"
"${pip[@]}" -c "$venv/constraints.txt" --no-build-isolation --no-deps -e plugins/instructkit-peft-extras
