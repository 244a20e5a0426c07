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
# The OCR privacy test watches every file-creating system call of a real OCR run under strace.
command -v strace >/dev/null 2>&1 || need+=(strace)
# `synthese export` checks its FHIR bundles against the HL7 IPS package, fetched below with npm.
command -v npm >/dev/null 2>&1 || need+=(npm)
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

# The HL7 FHIR IPS 2.0.0 package (StructureDefinitions for `synthese export`'s offline profile check), from the
# npm registry into .deps/fhir/ (git-ignored, never committed), checked against the registry's sha512.
IPS=hl7.fhir.uv.ips-2.0.0
IPS_SHA512="4PWToJ9b1FgXsm9DIvHiU6HO9Z5m75jxk0e0MXOmhFlf2m2slk/d6RoiSYIChKJlvmtJ7GbRftt7PphlwmZcbQ=="
if [ ! -f ".deps/fhir/$IPS/package/package.json" ]; then
  mkdir -p .deps/fhir
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack -q hl7.fhir.uv.ips@2.0.0 >/dev/null)
  got=$(.venv/bin/python -c 'import base64, hashlib, sys; print(base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$tmp/$IPS.tgz")
  if [ "$got" != "$IPS_SHA512" ]; then
    echo "install.sh: $IPS.tgz does not match its sha512, not installed" >&2
    exit 1
  fi
  rm -rf ".deps/fhir/$IPS" && mkdir -p ".deps/fhir/$IPS"
  tar -xzf "$tmp/$IPS.tgz" -C ".deps/fhir/$IPS"
  rm -rf "$tmp"
fi
echo "install.sh: ready (.venv/bin/synthese)" >&2
