#!/usr/bin/env bash
# The test command (README, .ci/run): installs what is missing, builds, lints, runs every test
# against real redis-server / redis-sentinel / channels_redis / Chromium processes it starts itself.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v redis-sentinel >/dev/null || need_apt+=(redis-sentinel)
command -v redis-benchmark >/dev/null || need_apt+=(redis-tools)
/usr/bin/python3 -c 'import channels_redis, msgpack, cryptography' 2>/dev/null ||
  need_apt+=(python3-channels-redis python3-msgpack python3-cryptography)
[[ -x /usr/bin/chromium ]] || need_apt+=(chromium)

if ((${#need_apt[@]})); then
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    echo "chanlayer tests need Debian packages: sudo apt-get install ${need_apt[*]}" >&2
    exit 1
  fi
  echo "installing ${need_apt[*]} (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
fi

npm run build
npm run lint
node scripts/run-tests.mjs "$@"
