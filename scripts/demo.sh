#!/usr/bin/env bash
# `make demo`: deploy an example stack onto real Docker hosts and show it answering.
# With a reachable engine (DOCKER_HOST or the default socket) it deploys examples/simple-nginx
# there; otherwise it brings up the lab (3 hosts, each a network namespace with its own engine
# and sshd) and deploys the multi-host nginx example to them over SSH.
set -euo pipefail
cd "$(dirname "$0")/.."
run=.venv/bin/graphium-run
export GRAPHIUM_STATE=${GRAPHIUM_STATE:-.graphium/demo-state.json}

engine_answers() {
  .venv/bin/python - "$1" <<'PY' 2>/dev/null
import sys, docker
docker.DockerClient(base_url=sys.argv[1], timeout=3).ping()
PY
}

url=${DOCKER_HOST:-unix:///var/run/docker.sock}
if engine_answers "$url"; then
  echo "==> Using the Docker engine at $url"
  export DOCKER_HOST=$url
  stack=examples/simple-nginx.jsonld
  inventory=()
  urls=(http://127.0.0.1:8080/)
else
  echo "==> No Docker engine reachable: starting the graphium lab (3 hosts with engine + sshd)"
  .venv/bin/python -m lab up
  stack=examples/nginx-multihost.jsonld
  inventory=(-i examples/lab-inventory.json)
  urls=(http://10.231.0.11:8081/ http://10.231.0.12:8082/ http://10.231.0.13:8083/)
fi

echo "==> graphium-run validate $stack ${inventory[*]}"
$run validate "$stack" "${inventory[@]}"
echo "==> graphium-run apply $stack ${inventory[*]}"
$run apply "$stack" "${inventory[@]}"
echo "==> Each container answers on its own host:"
for u in "${urls[@]}"; do
  printf '   %-28s %s\n' "$u" "$(curl -fsS -m 5 "$u" | head -c 60 | tr -d '\n')"
done
if [ ${#urls[@]} -gt 1 ]; then
  echo "==> ...and not on the others:"
  for u in "${urls[@]}"; do
    port=${u##*:}; port=${port%/}
    for other in "${urls[@]}"; do
      [ "$other" = "$u" ] && continue
      addr=${other#http://}; addr=${addr%%:*}
      if curl -fsS -m 2 "http://$addr:$port/" >/dev/null 2>&1; then
        echo "   unexpected: port $port answers on $addr"; exit 1
      fi
    done
    echo "   port $port answers only on ${u#http://}"
  done
fi
echo "==> Re-planning changes nothing:"
$run plan "$stack" "${inventory[@]}" --detailed-exitcode
$run status "${inventory[@]}"
echo
echo "Remove it with: GRAPHIUM_STATE=$GRAPHIUM_STATE $run destroy $stack ${inventory[*]}"
[ ${#inventory[@]} -eq 0 ] || echo "Stop the lab with: .venv/bin/python -m lab down"
