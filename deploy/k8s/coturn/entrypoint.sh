#!/bin/sh
# Entrypoint of the coturn container (docker-compose.yml), also run by
# tests/turn/test_coturn_entrypoint.py.
#
# It copies the production coturn.conf to a private file on a tmpfs and appends
# `static-auth-secret=$TURN_SECRET`, so the secret is never on a command line (visible to every
# user of the host through ps and /proc/<pid>/cmdline) and never in the image or the repository.
# Optional, non-secret settings go on the command line:
#   TURN_REALM            --realm (overrides the realm in coturn.conf)
#   TURN_EXTERNAL_IP      --external-ip, "<public>/<private>" behind 1:1 NAT
#   TURN_ALLOWED_PEER_IP  --allowed-peer-ip: ONE private address exempted from denied-peer-ip,
#                         the SFU's, when coturn and the SFU share a host (docs/DEPLOY.md)
# Arguments are passed on to turnserver.
set -eu

: "${TURN_SECRET:?TURN_SECRET must be set (the same value as the kundlinow service's)}"
conf_in="${COTURN_CONF:-/etc/coturn/kundlinow.conf}"
run_dir="${COTURN_RUN_DIR:-/run/coturn}"

case "$TURN_SECRET" in
  *[!A-Za-z0-9._~+/=-]*)
    echo "TURN_SECRET may hold only A-Z a-z 0-9 . _ ~ + / = - (use: openssl rand -hex 32)" >&2
    exit 64
    ;;
esac
if [ "${#TURN_SECRET}" -lt 32 ]; then
  echo "TURN_SECRET must be at least 32 characters (use: openssl rand -hex 32)" >&2
  exit 64
fi
case "${TURN_ALLOWED_PEER_IP:-}" in
  *-* | */* | *,* | *" "*)
    echo "TURN_ALLOWED_PEER_IP must be one address, not a range" >&2
    exit 64
    ;;
esac

umask 077
mkdir -p "$run_dir"
conf="$run_dir/turnserver.conf"
{
  cat "$conf_in"
  printf '\n# Appended by coturn-entrypoint.sh from $TURN_SECRET.\nstatic-auth-secret=%s\n' \
    "$TURN_SECRET"
} >"$conf"
unset TURN_SECRET

set -- -c "$conf" --pidfile="$run_dir/turnserver.pid" --userdb="$run_dir/turndb" "$@"
if [ -n "${TURN_REALM:-}" ]; then
  set -- "$@" --realm="$TURN_REALM"
fi
if [ -n "${TURN_EXTERNAL_IP:-}" ]; then
  set -- "$@" --external-ip="$TURN_EXTERNAL_IP"
fi
if [ -n "${TURN_ALLOWED_PEER_IP:-}" ]; then
  set -- "$@" --allowed-peer-ip="$TURN_ALLOWED_PEER_IP"
fi
exec "${TURNSERVER:-turnserver}" "$@"
