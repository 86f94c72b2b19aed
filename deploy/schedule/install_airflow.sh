#!/usr/bin/env bash
# Installs Apache Airflow into its own virtual environment VENV_DIR, pinned by
# airflow-constraints.txt beside this script. Airflow's pins conflict with TensorFlow's and
# Beam's, so it never goes into the project's venv: the DAG calls the project's `mtlrec`
# command as a subprocess. Re-running is a no-op while the constraints are unchanged.
#
#   deploy/schedule/install_airflow.sh /opt/airflow-venv     (or: make airflow)
set -euo pipefail

VENV="${1:?usage: install_airflow.sh VENV_DIR}"
PYTHON="${PYTHON:-python3.11}"
VERSION=2.10.5
CONSTRAINTS="$(cd "$(dirname "$0")" && pwd)/airflow-constraints.txt"
STAMP="$VENV/.mtlrec-constraints.sha256"

want="$(sha256sum "$CONSTRAINTS" | cut -d' ' -f1)"
if [ -x "$VENV/bin/airflow" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then
  echo "Airflow $VERSION already installed in $VENV"
  exit 0
fi
command -v "$PYTHON" >/dev/null 2>&1 || { echo "needs $PYTHON (CPython 3.11)" >&2; exit 1; }
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "apache-airflow==$VERSION" --constraint "$CONSTRAINTS"
echo "$want" > "$STAMP"
echo "Airflow $("$VENV/bin/airflow" version) installed in $VENV"
