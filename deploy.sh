#!/usr/bin/env bash
# Installs openai-proxy on this host, in this checkout, for supervisord. Safe to run again
# after every `git pull`: it never overwrites .env and asks nothing.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: ./deploy.sh [--install-supervisor] [--help]

Prepares this checkout to run openai-proxy under supervisord:
  1. checks Node.js (>= 20.6: supervisord.conf runs `node --env-file=.env`)
  2. npm ci, npm run build            (dist/ from src/)
  3. mkdir -p logs                    (supervisord.log, proxy.out.log, proxy.err.log, proxy.log, requests.log)
  4. cp .env.example .env             (only when .env is missing; an existing .env is never touched)
  5. finds supervisord, or says how to install it
Then prints the commands to start it. Idempotent and non-interactive; no root needed.

Options:
  --install-supervisor   when supervisord is missing: apt-get install -y supervisor (as root)
  -h, --help             this text
EOF
}

install_supervisor=false
for arg in "$@"; do
  case "$arg" in
    --install-supervisor) install_supervisor=true ;;
    -h | --help) usage; exit 0 ;;
    *) echo "deploy.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
  esac
done

cd "$(dirname "$(readlink -f "$0")")"
step() { printf '==> %s\n' "$*"; }
die() { printf 'deploy.sh: %s\n' "$*" >&2; exit 1; }

step "Node.js"
command -v node >/dev/null 2>&1 ||
  die "node not found. Install Node.js 20 or newer (https://nodejs.org, or your distribution's nodejs package), then run ./deploy.sh again."
node_version=$(node -p 'process.versions.node')
IFS=. read -r node_major node_minor _ <<<"$node_version"
if ((node_major < 20 || (node_major == 20 && node_minor < 6))); then
  die "Node.js $node_version is too old: openai-proxy needs 20.6 or newer (supervisord.conf uses node --env-file). Install a newer Node.js, then run ./deploy.sh again."
fi
command -v npm >/dev/null 2>&1 || die "npm not found (it ships with Node.js): install it, then run ./deploy.sh again."
echo "node $node_version, npm $(npm --version)"

step "npm ci"
npm ci --no-audit --no-fund

step "npm run build"
npm run build

step "logs/"
mkdir -p logs
sock="$PWD/logs/supervisor.sock"
if ((${#sock} > 100)); then
  echo "warning: $sock is ${#sock} characters; unix sockets allow about 100. Move the checkout to a shorter path." >&2
fi

step ".env"
if [ -e .env ]; then
  echo ".env exists: left as it is (compare with .env.example for new variables)"
else
  cp .env.example .env
  chmod 600 .env
  echo "created .env from .env.example: set UPSTREAM_URL (e.g. http://llm.internal:8000) there"
fi

step "supervisord"
if ! command -v supervisord >/dev/null 2>&1 && $install_supervisor; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y supervisor ||
      { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y supervisor; }
  else
    echo "--install-supervisor needs root and apt-get; install it yourself (below)." >&2
  fi
fi
if ! command -v supervisord >/dev/null 2>&1; then
  cat >&2 <<'EOF'
deploy.sh: supervisord not found. Everything else is ready. Install supervisor with one of:
  sudo apt-get install supervisor                         (Debian, Ubuntu)
  sudo dnf install supervisor                             (Fedora, RHEL with EPEL)
  pip install supervisor                                  (any system, in a virtualenv or with pipx)
then run ./deploy.sh again. As root on Debian/Ubuntu, ./deploy.sh --install-supervisor does both.
EOF
  exit 1
fi
echo "$(command -v supervisord) $(supervisord --version)"

echo
if supervisorctl -c supervisord.conf pid >/dev/null 2>&1; then
  echo "Done. supervisord is already running for this checkout; load the new build with:"
  echo "  supervisorctl -c supervisord.conf restart openai-proxy"
else
  echo "Done. Start it with:"
  echo "  supervisord -c supervisord.conf"
fi
echo "  supervisorctl -c supervisord.conf status"
