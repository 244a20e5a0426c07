#!/usr/bin/env bash
# Installs everything Synthèse needs on a fresh Debian machine: tesseract with its French model and
# chromium for the browser tests (Debian packages), then a virtual env in .venv with the package and its test extras.
# Safe to run again: it only adds what is missing. Nothing is downloaded at run time afterwards.
set -euo pipefail
cd "$(dirname "$0")"

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
need=()
command -v tesseract >/dev/null 2>&1 || need+=(tesseract-ocr)
[ -e /usr/share/tesseract-ocr/5/tessdata/fra.traineddata ] || need+=(tesseract-ocr-fra)
[ -e /usr/share/tesseract-ocr/5/tessdata/osd.traineddata ] || need+=(tesseract-ocr-osd)
python3 -c "import venv, ensurepip" 2>/dev/null || need+=(python3-venv)
# Browser tests (review page, audit report) drive Debian's chromium through Playwright's executable_path:
# no browser is downloaded.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "install.sh: installing Debian packages: ${need[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
echo "install.sh: ready (.venv/bin/synthese)" >&2
