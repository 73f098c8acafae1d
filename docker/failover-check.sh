#!/usr/bin/env bash
# Stop the Redis master under a live chanlayer client and check the client recovers.
#
#   docker/failover-check.sh            # `docker compose stop` the master (clean shutdown)
#   docker/failover-check.sh --kill     # `docker compose kill` it (crash, SIGKILL)
#
# Runs scripts/failover-check.ts in the `chanlayer-check` service. Its contract:
#   - builds its layer from CHANNEL_LAYERS (set in compose.yml: Sentinel hosts);
#   - prints a line `READY` once messages flow, then keeps sending and receiving;
#   - exits 0 once messages flow again after the failover (reporting the gap),
#     1 if they don't within FAILOVER_CHECK_TIMEOUT_MS (default 30000).
# Exits with the check's status. The old master is started again afterwards (it
# rejoins as a replica); `docker compose -f docker/compose.yml down` when done.
set -euo pipefail
cd "$(dirname "$0")"

how=stop
case "${1:-}" in
  '') ;;
  --kill) how=kill ;;
  *) echo "usage: $0 [--kill]" >&2; exit 2 ;;
esac

compose() { docker compose -f compose.yml "$@"; }
# A fixed name so the one-off client container can be removed however this script ends.
check_name=chanlayer-failover-check

log=$(mktemp)
check_pid=
cleanup() {
  [ -n "$check_pid" ] && kill "$check_pid" 2>/dev/null
  docker rm -f "$check_name" >/dev/null 2>&1 || true
  rm -f "$log"
  compose start redis-master >/dev/null 2>&1 || true
}
trap cleanup EXIT

# --wait returns once every healthcheck passes (replica in sync, sentinel quorum).
compose up -d --wait redis-master redis-replica sentinel-1 sentinel-2 sentinel-3

docker rm -f "$check_name" >/dev/null 2>&1 || true
compose --profile check run --rm -T --name "$check_name" chanlayer-check >"$log" 2>&1 &
check_pid=$!

# The first run includes `npm ci` in the container: allow a few minutes.
for _ in $(seq 1 600); do
  grep -q '^READY' "$log" && break
  if ! kill -0 "$check_pid" 2>/dev/null; then
    cat "$log"
    echo 'failover-check: the check exited before READY' >&2
    exit 1
  fi
  sleep 0.5
done
grep -q '^READY' "$log" || { cat "$log"; echo 'failover-check: no READY' >&2; exit 1; }

echo "failover-check: $how redis-master at $(date +%T)"
compose "$how" redis-master

status=0
wait "$check_pid" || status=$?
check_pid=
cat "$log"
echo "failover-check: new master $(compose exec -T sentinel-1 redis-cli -p 26379 sentinel get-master-addr-by-name mymaster | tr '\n' ' ')"
echo "failover-check: $([ "$status" = 0 ] && echo PASS || echo "FAIL ($status)")"
exit "$status"
