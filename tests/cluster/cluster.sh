#!/usr/bin/env bash
# A single-node SLURM cluster on this machine: `cluster.sh up` / `cluster.sh down` (both
# idempotent). Needs root. `up` installs Debian's slurm-wlm and munge when absent, renders
# slurm.conf.in into /etc/slurm/slurm.conf and starts munged, slurmctld and slurmd directly
# (no systemd), then waits until the node takes jobs.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
STATE="${ARTDET_SLURM_STATE:-/var/lib/artdet-slurm}"
CONF=/etc/slurm/slurm.conf
SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)

die() { echo "cluster.sh: $*" >&2; exit 1; }

# Whether the daemon of a pid file is alive (a zombie, exited but not yet reaped, is not).
alive() {
  local pidfile="$1" pid
  [ -s "$pidfile" ] || return 1
  pid="$(cat "$pidfile" 2> /dev/null)" || return 1
  [ -r "/proc/$pid/stat" ] || return 1
  [ "$(awk '{print $3}' "/proc/$pid/stat")" != Z ]
}

# Stop one daemon by its pid file (never by name: only what this script started).
stop() {
  local pidfile="$1"
  if alive "$pidfile"; then
    $SUDO kill "$(cat "$pidfile")"
    for _ in $(seq 30); do
      alive "$pidfile" || return 0
      sleep 1
    done
  fi
}

as_munge() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u munge -- "$@"; else sudo -u munge "$@"; fi
}

up() {
  if ! command -v slurmctld > /dev/null || ! command -v munged > /dev/null; then
    echo "installing slurm-wlm and munge (Debian packages)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq slurm-wlm munge > /dev/null
  fi
  $SUDO mkdir -p "$STATE/slurmctld" "$STATE/slurmd" /etc/slurm /run/munge /var/log/munge /var/lib/munge
  if [ ! -s /etc/munge/munge.key ]; then
    $SUDO mkdir -p /etc/munge
    $SUDO dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
  $SUDO chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge 2> /dev/null || true
  $SUDO chmod 600 /etc/munge/munge.key
  local host cpus memory
  host="$(hostname -s)"
  cpus="$(nproc)"
  [ "$cpus" -ge 8 ] || cpus=8
  memory="$(awk '/MemTotal/ {m = int($2 / 1024); print (m < 32000 ? 32000 : m)}' /proc/meminfo)"
  sed -e "s|@HOST@|$host|g" -e "s|@CPUS@|$cpus|g" -e "s|@MEMORY@|$memory|g" -e "s|@STATE@|$STATE|g" \
    "$HERE/slurm.conf.in" | $SUDO tee "$CONF.new" > /dev/null
  if ! cmp -s "$CONF.new" "$CONF" 2> /dev/null; then
    $SUDO mv "$CONF.new" "$CONF"
    # A changed configuration needs fresh daemons.
    stop "$STATE/slurmd.pid"
    stop "$STATE/slurmctld.pid"
  else
    $SUDO rm -f "$CONF.new"
  fi
  alive /run/munge/munged.pid || as_munge /usr/sbin/munged
  alive "$STATE/slurmctld.pid" || $SUDO /usr/sbin/slurmctld
  alive "$STATE/slurmd.pid" || $SUDO /usr/sbin/slurmd
  for _ in $(seq 60); do
    state="$(sinfo --noheader --format=%t 2> /dev/null | head -1 || true)"
    case "$state" in
      idle* | mix* | alloc*) echo "slurm cluster up: node $host ($cpus CPUs, $memory MB), partition main"; return 0 ;;
      down* | drain* | fail*) $SUDO scontrol update nodename="$host" state=resume 2> /dev/null || true ;;
    esac
    sleep 1
  done
  echo "--- $STATE/slurmctld.log" >&2; tail -20 "$STATE/slurmctld.log" >&2 2> /dev/null || true
  echo "--- $STATE/slurmd.log" >&2; tail -20 "$STATE/slurmd.log" >&2 2> /dev/null || true
  die "the node did not come up within 60 s (sinfo state: '${state:-none}')"
}

down() {
  # Stop the daemons this script starts, by their pid files (nothing else is touched).
  stop "$STATE/slurmd.pid"
  stop "$STATE/slurmctld.pid"
  stop /run/munge/munged.pid
  echo "slurm cluster down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) die "usage: cluster.sh up|down" ;;
esac
