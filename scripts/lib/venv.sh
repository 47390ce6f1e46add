# shellcheck shell=bash
# ensure_venv EXTRAS: create .venv with Python >= 3.11 and install the project with EXTRAS.
# Re-installs only when pyproject.toml changed, so a second run starts in seconds.

find_python() {
  local candidate
  for candidate in python3.12 python3.11 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "error: Python 3.11 or newer is required (apt-get install python3)" >&2
  return 1
}

ensure_venv() {
  local extras=$1 py stamp want
  if [ ! -x .venv/bin/python ]; then
    py=$(find_python)
    echo "creating .venv with $py" >&2
    "$py" -m venv .venv || { echo "error: '$py -m venv' failed (apt-get install python3-venv)" >&2; return 1; }
    .venv/bin/python -m pip install -q --upgrade pip
  fi
  stamp=.venv/.installed
  want="$extras $(cat pyproject.toml client/pyproject.toml | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ] || ! grep -qxF "$want" "$stamp"; then
    echo "installing the project with extras $extras, and its client (client/)" >&2
    .venv/bin/python -m pip install -q -e ".$extras" -e ./client
    echo "$want" >> "$stamp"
  fi
}
