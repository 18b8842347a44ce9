#!/usr/bin/env bash
# Installs what deepcast's demo and tests need on a Debian machine.
# As root it installs what is missing with apt-get (and npm ci for the web
# page); otherwise it lists what to install and fails.
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package
declare -A need=(
  [ffmpeg]=ffmpeg
  [ffprobe]=ffmpeg
  [xmllint]=libxml2-utils
  [chromium]=chromium
  [npm]=npm
  [nginx]=nginx
  [gst-launch-1.0]=gstreamer1.0-tools
  [prometheus]=prometheus
  [promtool]=prometheus
  [systemd-analyze]=systemd
  [skopeo]=skopeo
  [umoci]=umoci
)
if [ "${DEEPCAST_DEPS_BENCH:-}" = 1 ]; then
  need[wrk]=wrk
  need[varnishd]=varnish
  need[nsd]=nsd
  need[dnsperf]=dnsperf
  need[h2load]=nghttp2-client
fi

missing=()
for cmd in "${!need[@]}"; do
  if ! command -v "$cmd" >/dev/null 2>&1; then
    missing+=("${need[$cmd]}")
  fi
done
# GStreamer plays HLS in the tests: its HLS demuxer (plugins-bad), the MP4
# demuxer (plugins-good) and the H.264/AAC decoders (libav).
for plugin in hlsdemux:gstreamer1.0-plugins-bad qtdemux:gstreamer1.0-plugins-good avdec_h264:gstreamer1.0-libav; do
  if ! gst-inspect-1.0 "${plugin%%:*}" >/dev/null 2>&1; then
    missing+=("${plugin#*:}" gstreamer1.0-plugins-base)
  fi
done
# De-duplicate package names.
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sed '/^$/d' | sort -u)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" fonts-dejavu-core >/dev/null
  else
    echo "deps: missing Debian packages: ${missing[*]}" >&2
    echo "deps: install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
if ! command -v go >/dev/null 2>&1; then
  echo "deps: Go 1.26 or newer is required (https://go.dev/dl/)" >&2
  exit 1
fi
# Front-end packages for the web pages, exactly as the lockfile says.
if [ ! -f web/node_modules/dashjs/package.json ] || [ ! -f web/node_modules/uplot/package.json ] || \
   [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "deps: npm is missing: install Node.js (apt-get install npm) and run: cd web && npm ci" >&2
    exit 1
  fi
  echo "deps: npm ci in web/"
  (cd web && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "deps: ok"
