#!/bin/sh
# Several "hosts" on one machine, for trying Shoal by hand: network namespaces on a bridge, the same layout as
# test/helpers/netns.ts (which the tests use). Needs root, iproute2, and iptables for cut/restore.
#
#   scripts/netns-hosts.sh up 3 10.77.50 demo     # namespaces demo-h1..demo-h3 = 10.77.50.1..3, bridge in demo-sw
#   ip netns exec demo-h1 node bin/shoal ...      # run an agent "on" host 1
#   scripts/netns-hosts.sh cut demo-h3 10.77.50   # drop host 3's traffic to/from the subnet
#   scripts/netns-hosts.sh restore demo-h3
#   scripts/netns-hosts.sh down demo              # delete every namespace named demo-*
set -eu

usage() {
  echo "usage: $0 up N SUBNET(a.b.c) PREFIX | down PREFIX | cut NS SUBNET | restore NS" >&2
  exit 2
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case "$cmd" in
  up)
    [ $# -eq 3 ] || usage
    n=$1 subnet=$2 prefix=$3
    # On any failure, remove what was created so far.
    trap '"$0" down "$prefix" >/dev/null 2>&1 || true' EXIT
    ip netns add "$prefix-sw"
    ip -n "$prefix-sw" link set lo up
    ip -n "$prefix-sw" link add br0 type bridge
    ip -n "$prefix-sw" link set br0 up
    i=1
    while [ "$i" -le "$n" ]; do
      ns="$prefix-h$i"
      ip netns add "$ns"
      ip -n "$ns" link set lo up
      ip -n "$prefix-sw" link add "v$i" type veth peer name eth0 netns "$ns"
      ip -n "$prefix-sw" link set "v$i" master br0 up
      ip -n "$ns" addr add "$subnet.$i/24" dev eth0
      ip -n "$ns" link set eth0 up
      echo "$ns $subnet.$i"
      i=$((i + 1))
    done
    trap - EXIT
    ;;
  down)
    [ $# -eq 1 ] || usage
    for ns in $(ip netns list | awk '{print $1}' | grep "^$1-" || true); do
      ip netns del "$ns"
    done
    ;;
  cut)
    [ $# -eq 2 ] || usage
    ip netns exec "$1" iptables -A INPUT -s "$2.0/24" -j DROP
    ip netns exec "$1" iptables -A OUTPUT -d "$2.0/24" -j DROP
    ;;
  restore)
    [ $# -eq 1 ] || usage
    ip netns exec "$1" iptables -F INPUT
    ip netns exec "$1" iptables -F OUTPUT
    ;;
  *) usage ;;
esac
