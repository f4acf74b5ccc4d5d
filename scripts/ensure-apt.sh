#!/bin/sh
# Install Debian packages only for the binaries that are missing, so a provisioned machine pays nothing.
# Usage: scripts/ensure-apt.sh binary:package [binary:package ...]
#   e.g. scripts/ensure-apt.sh chromium:chromium promtool:prometheus
# A binary is found on PATH or given as an absolute path (/usr/bin/chromium:chromium).
set -eu

if [ "$#" -eq 0 ]; then
    echo "usage: $0 binary:package [binary:package ...]" >&2
    exit 2
fi

missing=""
for pair in "$@"; do
    binary=${pair%%:*}
    package=${pair#*:}
    if [ -z "$binary" ] || [ -z "$package" ] || [ "$binary" = "$pair" ]; then
        echo "$0: expected binary:package, got '$pair'" >&2
        exit 2
    fi
    case "$binary" in
        /*) [ -x "$binary" ] && continue ;;
        *) command -v "$binary" >/dev/null 2>&1 && continue ;;
    esac
    case " $missing " in
        *" $package "*) ;;
        *) missing="$missing $package" ;;
    esac
done

[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "$0: missing$missing and apt-get is not available; install them by hand" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "installing Debian packages:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086  # the package list is meant to split into words
$sudo apt-get install -y -qq --no-install-recommends $missing
