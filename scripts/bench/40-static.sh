#!/usr/bin/env bash
# celeriac static vs Debian's nginx serving the same 20 KB hashed JavaScript
# file with `Accept-Encoding: br, gzip`, wrk on loopback, same run.
# nginx-light has gzip_static but no Brotli module, so nginx sends the .gz
# celeriac created at start-up and celeriac sends the .br; both send the
# same immutable Cache-Control. Prints a Markdown table (medians of the
# rounds) with the ratio to nginx. Ports 18090-18091.
#
# Knobs: BENCH_DURATION (10s), BENCH_ROUNDS (3), BENCH_CONNS (64), BENCH_THREADS (2).
set -euo pipefail
cd "$(dirname "$0")/../.."

duration=${BENCH_DURATION:-10s}
rounds=${BENCH_ROUNDS:-3}
conns=${BENCH_CONNS:-64}
threads=${BENCH_THREADS:-2}
cport=18090
nport=18091
nginx=$(command -v nginx || echo /usr/sbin/nginx)
for p in wrk curl "$nginx"; do
  command -v "$p" >/dev/null || { echo "40-static: $p not installed" >&2; exit 1; }
done

for port in $cport $nport; do
  if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
    echo "40-static: port $port is already in use" >&2; exit 1
  fi
done
tmp=$(mktemp -d)
chmod 755 "$tmp" # nginx workers run unprivileged
cpid=""
cleanup() {
  if [ -n "$cpid" ]; then kill "$cpid" 2>/dev/null || true; wait "$cpid" 2>/dev/null || true; fi
  if [ -f "$tmp/nginx.pid" ]; then kill "$(cat "$tmp/nginx.pid")" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

bin=bin/celeriac
if [ ! -x "$bin" ]; then
  CGO_ENABLED=0 go build -trimpath -o "$tmp/celeriac" ./cmd/celeriac
  bin=$tmp/celeriac
fi

# 20 KiB of real JavaScript (Django admin's), under a Django-style hashed name.
mkdir -p "$tmp/root/static/js" "$tmp/logs"
admin=/usr/lib/python3/dist-packages/django/contrib/admin/static/admin/js
cat "$admin"/inlines.js "$admin"/SelectFilter2.js "$admin"/actions.js "$admin"/calendar.js > "$tmp/app.js"
truncate -s 20480 "$tmp/app.js"
hash=$(md5sum "$tmp/app.js" | cut -c1-12)
name="js/app.$hash.js"
cp "$tmp/app.js" "$tmp/root/static/$name"
printf '{"paths": {"js/app.js": "%s"}, "version": "1.0"}' "$name" > "$tmp/root/static/staticfiles.json"

"$bin" static --root "$tmp/root/static" --listen "127.0.0.1:$cport" --prefix /static/ \
  --keep-manifests 1 --reload off 2>"$tmp/logs/celeriac.log" &
cpid=$!

cat > "$tmp/nginx.conf" <<NGINX
worker_processes $(nproc);
pid $tmp/nginx.pid;
error_log $tmp/logs/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  types { text/javascript js; application/json json; }
  charset utf-8;
  charset_types text/javascript;
  client_body_temp_path $tmp/nginx-tmp; proxy_temp_path $tmp/nginx-tmp; fastcgi_temp_path $tmp/nginx-tmp;
  uwsgi_temp_path $tmp/nginx-tmp; scgi_temp_path $tmp/nginx-tmp;
  server {
    listen 127.0.0.1:$nport;
    root $tmp/root;
    location /static/ {
      gzip_static on;
      gzip_vary on;
      add_header Cache-Control "public, max-age=31536000, immutable";
      add_header X-Content-Type-Options nosniff;
    }
  }
}
NGINX
mkdir -p "$tmp/nginx-tmp"

url_c="http://127.0.0.1:$cport/static/$name"
url_n="http://127.0.0.1:$nport/static/$name"
for _ in $(seq 100); do
  curl -sf -o /dev/null "$url_c" && break
  kill -0 "$cpid" 2>/dev/null || { cat "$tmp/logs/celeriac.log" >&2; exit 1; }
  sleep 0.1
done
# nginx serves the .gz that celeriac wrote next to the original.
[ -f "$tmp/root/static/$name.gz" ] || { echo "40-static: no .gz variant was created" >&2; ls -la "$tmp/root/static/js" >&2; cat "$tmp/logs/celeriac.log" >&2; exit 1; }
"$nginx" -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/logs/error.log"
for _ in $(seq 100); do curl -sf -o /dev/null "$url_n" && break; sleep 0.1; done

check() { # url accept-encoding → the Content-Encoding sent; the body lands in $tmp/body
  curl -s -D - -o "$tmp/body" -H "Accept-Encoding: $2" "$1" | tr -d '\r' |
    awk 'tolower($1)=="content-encoding:" {e=$2} END {print e}'
}
for u in "$url_c" "$url_n"; do
  curl -s -D - -o /dev/null -H 'Accept-Encoding: br, gzip' "$u" | grep -qi '^cache-control: public, max-age=31536000, immutable' ||
    { echo "40-static: $u lacks the immutable Cache-Control" >&2; exit 1; }
done

run_wrk() { # url accept-encoding → "req/s p99_ms"
  wrk -t"$threads" -c"$conns" -d"$duration" --latency -H "Accept-Encoding: $2" "$1" | awk '
    /Requests\/sec:/ {rps=$2}
    $1=="99%" {v=$2; u=v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
      ms = (u=="us") ? v/1000 : (u=="s") ? v*1000 : (u=="m") ? v*60000 : v; p99=ms}
    END {printf "%s %.2f\n", rps, p99}'
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
nver=$("$nginx" -v 2>&1 | sed 's|.*nginx/||')

# bench_case accept-encoding: interleaved rounds, one table row per server.
bench_case() {
  local ae=$1 enc_c size_c enc_n size_n rps_c p99_c rps_n p99_n ratio
  enc_c=$(check "$url_c" "$ae"); size_c=$(stat -c %s "$tmp/body")
  enc_n=$(check "$url_n" "$ae"); size_n=$(stat -c %s "$tmp/body")
  wrk -t"$threads" -c"$conns" -d2s -H "Accept-Encoding: $ae" "$url_c" >/dev/null
  wrk -t"$threads" -c"$conns" -d2s -H "Accept-Encoding: $ae" "$url_n" >/dev/null
  : > "$tmp/c.txt"; : > "$tmp/n.txt"
  for _ in $(seq "$rounds"); do
    run_wrk "$url_c" "$ae" >> "$tmp/c.txt"
    run_wrk "$url_n" "$ae" >> "$tmp/n.txt"
  done
  rps_c=$(cut -d' ' -f1 "$tmp/c.txt" | median); p99_c=$(cut -d' ' -f2 "$tmp/c.txt" | median)
  rps_n=$(cut -d' ' -f1 "$tmp/n.txt" | median); p99_n=$(cut -d' ' -f2 "$tmp/n.txt" | median)
  ratio=$(awk -v a="$rps_c" -v b="$rps_n" 'BEGIN {printf "%.2f", a/b}')
  printf '| `%s` | celeriac static | %s | %s | %.0f | %.2f ms | **%s×** |\n' "$ae" "${enc_c:-identity}" "$size_c" "$rps_c" "$p99_c" "$ratio"
  printf '| `%s` | nginx %s, gzip_static | %s | %s | %.0f | %.2f ms | 1.00× |\n' "$ae" "$nver" "${enc_n:-identity}" "$size_n" "$rps_n" "$p99_n"
  rounds_c+=" [$(cut -d' ' -f1 "$tmp/c.txt" | xargs)]"; rounds_n+=" [$(cut -d' ' -f1 "$tmp/n.txt" | xargs)]"
}

rounds_c=""; rounds_n=""
echo "### static: 20 KB hashed JS, celeriac static vs nginx"
echo
echo "| Accept-Encoding | server | sends | body bytes | req/s (median of $rounds) | p99 latency | req/s vs nginx |"
echo "|---|---|---|---|---|---|---|"
bench_case "br, gzip"
# nginx-light has no Brotli module: the same bytes on both sides, for reference.
bench_case "gzip"
echo
echo "wrk -t$threads -c$conns -d$duration on loopback; $(nproc) cores shared by wrk and both servers" \
  "(nginx-light has no Brotli module, so for \`br, gzip\` it sends the .gz celeriac made);" \
  "nginx worker_processes $(nproc), access_log off, sendfile on; celeriac GOMAXPROCS $(nproc)." \
  "Per-round req/s: celeriac$rounds_c, nginx$rounds_n."
