#!/usr/bin/env bash
# Makes this machine ready for `make test`: installs the Debian packages the
# integration tests talk to (real Celery, Django, servers and load tools) and
# starts any local service that is down. Safe to run again; quick when done.
set -euo pipefail

PKGS=(
  python3-celery python3-redis python3-msgpack python3-django python3-django-redis
  python3-psycopg2 python3-django-celery-beat python3-pymemcache python3-ephem
  memcached nginx-light pgbouncer wrk postgresql-contrib redis-server rabbitmq-server
  chromium python3-gunicorn
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test-deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # nginx and memcached start themselves on install where they can; that is harmless.
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
  for _ in $(seq 1 120); do up "$1" && return 0; sleep 0.5; done
  echo "test-deps: $2 did not come up on port $1" >&2; return 1
}

if ! up 6379; then
  echo "test-deps: starting redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port 6379 redis
fi
if ! up 5672; then
  echo "test-deps: starting rabbitmq"
  rabbitmq-server -detached
  wait_port 5672 rabbitmq
fi
if ! up 5432; then
  echo "test-deps: starting postgresql"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  wait_port 5432 postgresql
fi
if ! up 11211; then
  echo "test-deps: starting memcached"
  memcached -d -u nobody -l 127.0.0.1 -p 11211
  wait_port 11211 memcached
fi
echo "test-deps: ready"
