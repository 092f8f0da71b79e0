#!/usr/bin/env bash
# Installs what lernflow needs on a fresh Debian machine, idempotently:
#   Debian packages (Redis, OpenJDK 17, Maven, the Pango libraries WeasyPrint uses)
#   and the Python virtualenv .venv with lernflow and its dev tools.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need=()
have_java17() {
  ls /usr/lib/jvm/*17*/bin/java >/dev/null 2>&1 && return 0
  [ -n "${LERNFLOW_STACK_JAVA_HOME:-}" ] && [ -x "$LERNFLOW_STACK_JAVA_HOME/bin/java" ] && return 0
  return 1
}
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
have_java17 || need+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
dpkg -s libpango-1.0-0 >/dev/null 2>&1 || need+=(libpango-1.0-0)
dpkg -s libpangoft2-1.0-0 >/dev/null 2>&1 || need+=(libpangoft2-1.0-0)
dpkg -s libcairo2 >/dev/null 2>&1 || need+=(libcairo2)              # CairoSVG renderer
dpkg -s fonts-dejavu-core >/dev/null 2>&1 || need+=(fonts-dejavu-core)  # the sample template's fonts
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)  # job_request (reports)
command -v unzip >/dev/null 2>&1 || need+=(unzip)  # tests open report zips as users do
command -v python3.11 >/dev/null 2>&1 || need+=(python3.11 python3.11-venv)
command -v chromium >/dev/null 2>&1 || need+=(chromium)            # browser tests of `lernflow serve`
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v pdfdetach >/dev/null 2>&1 || need+=(poppler-utils)     # interop: the credential attachment
command -v zbarimg >/dev/null 2>&1 || need+=(zbar-tools)          # interop: a real QR reader
command -v promtool >/dev/null 2>&1 || need+=(prometheus)         # alert rules checked offline
command -v podman >/dev/null 2>&1 || need+=(podman)               # the container image

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}"
  # Keep package post-install scripts from starting system services: the stack runs its own.
  policy_created=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    policy_created=1
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  if [ "$policy_created" = 1 ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
else
  echo "setup: Debian packages present"
fi

PY=$(command -v python3.11 || command -v python3)
stamp=.venv/.installed
if [ ! -x .venv/bin/python ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Python dependencies into .venv"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  touch "$stamp"
else
  echo "setup: .venv up to date"
fi
