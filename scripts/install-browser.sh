#!/usr/bin/env bash
# Headless Chromium for the dashboard render test. Installed from Debian where apt is usable and we are
# root (CI here); elsewhere the test skips with a reason.
set -u
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "no root or no apt-get: skipping Chromium"; exit 1
fi
(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1
command -v chromium >/dev/null 2>&1
