#!/usr/bin/env bash
# The browser tests drive Debian's chromium (Playwright's own browser download cannot work
# here). Install it when missing; as root with apt-get, else ask for it.
set -eu
command -v chromium >/dev/null 2>&1 && exit 0
if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  echo "Installing Debian's chromium for the browser tests..." >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "The browser tests need chromium: sudo apt-get install chromium" >&2
  exit 1
fi
