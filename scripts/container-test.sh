#!/usr/bin/env bash
# The Dockerfile, for real: builds the image with podman (no Docker engine needed) on a
# local stand-in for node:20-bookworm-slim, runs it in front of the fake LLM on 127.0.0.1,
# and checks what `docker run` users rely on: a chat completion through it, the
# HEALTHCHECK, a non-root process writing /app/logs, and a `stop` that drains an in-flight
# stream and exits 0.
#
#   bash scripts/container-test.sh        (root; .ci/run installs podman runc debootstrap ...)
#
# Prints `container test: passed` only when every check ran. Where this machine cannot
# build or run containers it prints `SKIP: <why>` and exits 0; a failed check exits 1.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
skip() { echo "SKIP: $*"; exit 0; }
fail() { echo "container test: FAILED: $*" >&2; exit 1; }
elapsed() { node -e 'console.log(((Date.now() - Number(process.argv[1])) / 1000).toFixed(1))' "$1"; }
now_ms() { node -e 'console.log(Date.now())'; }

# CI clones the repo into a folder with a copy of shared/ beside it.
base_tool="$(dirname "$repo")/shared/tools/podman-node-base"
[ -x "$base_tool" ] || skip "$base_tool not found: it makes the node base image podman needs here (no registry access)"
for cmd in podman runc debootstrap curl; do
  command -v "$cmd" >/dev/null 2>&1 ||
    skip "$cmd not installed (apt-get install podman runc debootstrap fuse-overlayfs uidmap slirp4netns curl)"
done

# Flags these machines need (see the header of podman-node-base).
podman=(podman --runtime runc)
run_flags=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096 --network host)
image=openai-proxy:test
name="openai-proxy-test-$$"
stop_timeout=20 # podman stop -t: longer than the SHUTDOWN_TIMEOUT given below
tmp=$(mktemp -d)
fake_pid=
cleanup() {
  "${podman[@]}" rm -f "$name" >/dev/null 2>&1 || true
  if [ -n "$fake_pid" ]; then kill "$fake_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "--- base image (podman-node-base)"
t0=$(now_ms)
if ! "$base_tool" >"$tmp/base.log" 2>&1; then
  cat "$tmp/base.log"
  skip "this machine cannot make or run the node base image with podman (output above)"
fi
tail -n 1 "$tmp/base.log"
echo "($(elapsed "$t0") s)"

echo "--- podman build"
t0=$(now_ms)
"${podman[@]}" build --pull=never --format docker -t "$image" . >"$tmp/build.log" 2>&1 ||
  { tail -n 40 "$tmp/build.log"; fail "podman build"; }
echo "built $image ($(elapsed "$t0") s)"

echo "--- fake upstream on 127.0.0.1"
node scripts/fake-upstream.mjs --port 0 >"$tmp/fake.out" 2>"$tmp/fake.err" &
fake_pid=$!
upstream=
for _ in $(seq 100); do
  upstream=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$tmp/fake.out" || true)
  [ -n "$upstream" ] && break
  sleep 0.1
done
[ -n "$upstream" ] || { cat "$tmp/fake.err"; fail "fake upstream did not start"; }
echo "$upstream"

port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
proxy="http://127.0.0.1:$port"

echo "--- podman run (port $port)"
# Without systemd, podman logs that it cannot add the periodic healthcheck timer; the
# healthcheck itself still works (podman healthcheck run, below). That noise goes to run.err.
"${podman[@]}" run -d --name "$name" "${run_flags[@]}" \
  -e PORT="$port" -e HOST=127.0.0.1 -e UPSTREAM_URL="$upstream" -e SHUTDOWN_TIMEOUT=5 \
  "$image" >"$tmp/run.out" 2>"$tmp/run.err" || { cat "$tmp/run.err"; fail "podman run"; }
up=false
for _ in $(seq 150); do
  if curl -fsS -o /dev/null "$proxy/health" 2>/dev/null; then up=true; break; fi
  [ "$("${podman[@]}" inspect --format '{{.State.Running}}' "$name")" = true ] || break
  sleep 0.2
done
$up || { "${podman[@]}" logs "$name" || true; cat "$tmp/run.err"; fail "the proxy in the container did not answer /health within 30 s"; }
echo "GET /health: 200"

echo "--- chat completion through the container"
chat=$(curl -fsS "$proxy/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model":"fake-model","messages":[{"role":"user","content":"Hello!"}]}') || fail "chat completion"
grep -q '"object":"chat.completion"' <<<"$chat" || fail "unexpected chat answer: $chat"
echo "POST /v1/chat/completions: 200 chat.completion"

echo "--- healthcheck"
[ "$("${podman[@]}" inspect --format '{{.Config.StopSignal}}' "$name")" = 15 ] || fail "stop signal is not SIGTERM"
"${podman[@]}" healthcheck run "$name" >"$tmp/hc.out" 2>&1 || { cat "$tmp/hc.out"; fail "podman healthcheck run"; }
echo "podman healthcheck run: ok"

echo "--- user and logs"
uid=$("${podman[@]}" exec "$name" id -u)
[ "$uid" != 0 ] || fail "the proxy runs as root"
"${podman[@]}" top "$name" user pid args
"${podman[@]}" exec "$name" test -s /app/logs/proxy.log || fail "/app/logs/proxy.log not written"
"${podman[@]}" exec "$name" test -s /app/logs/requests.log || fail "/app/logs/requests.log not written"
echo "uid $uid; /app/logs/proxy.log and requests.log written"

echo "--- podman stop drains an in-flight stream"
curl -sN "$proxy/v1/chat/completions" -H 'content-type: application/json' \
  -H 'x-fake-chunks: 10' -H 'x-fake-chunk-delay-ms: 200' \
  -d '{"model":"fake-model","stream":true,"messages":[{"role":"user","content":"Hello!"}]}' >"$tmp/stream.out" &
curl_pid=$!
for _ in $(seq 50); do [ -s "$tmp/stream.out" ] && break; sleep 0.1; done
[ -s "$tmp/stream.out" ] || fail "the stream did not begin"
t0=$(now_ms)
"${podman[@]}" stop -t "$stop_timeout" "$name" >/dev/null 2>>"$tmp/run.err"
took=$(elapsed "$t0")
wait "$curl_pid" || fail "the streaming client failed during the drain"
code=$("${podman[@]}" inspect --format '{{.State.ExitCode}}' "$name")
[ "$code" = 0 ] || { "${podman[@]}" logs "$name" | tail -n 5; fail "exit code $code after podman stop (SIGKILL after ${stop_timeout}s would be 137)"; }
node -e 'process.exit(Number(process.argv[1]) < 10 ? 0 : 1)' "$took" || fail "podman stop took ${took} s"
grep -q '^data: \[DONE\]' "$tmp/stream.out" || { tail -n 3 "$tmp/stream.out"; fail "the in-flight stream was cut"; }
# to a file, then grep: with pipefail, `podman logs | grep -q` fails when grep stops reading at
# its match and podman logs, with more lines to write (the other workers'), gets SIGPIPE
"${podman[@]}" logs "$name" >"$tmp/container.log" 2>/dev/null
grep -q '"msg":"stopped"' "$tmp/container.log" || { tail -n 8 "$tmp/container.log"; fail "no \"stopped\" line in the container's log"; }
# WORKERS=auto: every worker that listened drained and said so
listened=$(grep -c '"msg":"listening"' "$tmp/container.log" || true)
stopped=$(grep -c '"msg":"stopped"' "$tmp/container.log" || true)
[ "$listened" = "$stopped" ] || fail "$listened workers listened but $stopped said \"stopped\""
echo "stopped in ${took} s, exit code 0, the stream ended with [DONE], $stopped of $listened workers drained"

echo "container test: passed"
