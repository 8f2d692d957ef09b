#!/usr/bin/env bash
# Removes the Shoal agent installed by scripts/install.sh.
#
#   sudo scripts/uninstall.sh [--purge]
#
# Without --purge it removes the program and the service (/opt/shoal, /usr/local/bin/shoal, the unit) and keeps
# what cannot be recreated: the data (/var/lib/shoal), the configuration and cluster key (/etc/shoal) and the
# `shoal` user that owns them, so a later install.sh picks up the same identity. --purge removes those too.
# Stopping the service makes the agent leave the cluster gracefully. Its tasks are ended as well: with
# KillMode=process they would outlive the agent (see agent/README.md), which an uninstall must not leave behind.
set -euo pipefail

UNIT=/etc/systemd/system/shoal.service
purge=0
while [ $# -gt 0 ]; do
  case "$1" in
    --purge) purge=1; shift ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) printf 'uninstall.sh: error: unknown argument %s (see --help)\n' "$1" >&2; exit 1 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "uninstall.sh: error: run as root" >&2; exit 1; }
say() { printf 'uninstall.sh: %s\n' "$*"; }

# Pids of processes still in the unit's control group $1 (the agent's tasks), found through /proc/<pid>/cgroup
# so that it works alike on cgroup v1, v2 and hybrid hosts and inside containers. The path must match exactly
# (a container's own shoal.service sits deeper in the host's tree); never this shell, never pid 1.
unit_pids() {
  local cg="$1" f pid
  for f in /proc/[0-9]*/cgroup; do
    pid="${f#/proc/}"
    pid="${pid%/cgroup}"
    if [ "$pid" -le 1 ] || [ "$pid" -eq $$ ] || [ "$pid" -eq "$BASHPID" ]; then continue; fi
    if grep -qE ":${cg//./\\.}(/.*)?\$" "$f" 2>/dev/null; then echo "$pid"; fi
  done
}

if [ -d /run/systemd/system ] && systemctl cat shoal.service >/dev/null 2>&1; then
  cgroup="$(systemctl show -p ControlGroup --value shoal.service 2>/dev/null || true)"
  cgroup="${cgroup:-/system.slice/shoal.service}"
  systemctl disable shoal.service >/dev/null 2>&1 || true
  systemctl stop shoal.service || true
  leftover="$(unit_pids "$cgroup")"
  if [ -n "$leftover" ]; then
    say "ending the agent's remaining tasks: $(echo "$leftover" | tr '\n' ' ')"
    # shellcheck disable=SC2086 # one pid per word
    kill -TERM $leftover 2>/dev/null || true
    sleep 5
    leftover="$(unit_pids "$cgroup")"
    # shellcheck disable=SC2086
    [ -z "$leftover" ] || kill -KILL $leftover 2>/dev/null || true
  fi
  say "stopped and disabled shoal.service"
fi
rm -f "$UNIT"
rm -rf /etc/systemd/system/shoal.service.d
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl reset-failed shoal.service >/dev/null 2>&1 || true
fi
if [ "$(readlink /usr/local/bin/shoal 2>/dev/null || true)" = /opt/shoal/bin/shoal ]; then rm -f /usr/local/bin/shoal; fi
rm -rf /opt/shoal /opt/shoal.new /opt/shoal.old
say "removed /opt/shoal and the unit"

if [ "$purge" -eq 1 ]; then
  rm -rf /var/lib/shoal /etc/shoal /etc/default/shoal
  if getent passwd shoal >/dev/null; then userdel shoal; fi
  if getent group shoal >/dev/null; then groupdel shoal; fi
  say "purged /var/lib/shoal, /etc/shoal and the shoal user"
else
  say "kept /var/lib/shoal, /etc/shoal and the shoal user (--purge removes them)"
fi
