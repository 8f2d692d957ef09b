#!/bin/sh
# The web tier of examples/counter: nginx proxying to the `app` service at the address Shoal gives it
# ($SHOAL_SERVICE_APP: a listener of this node's agent, which passes each connection to an app task anywhere).
# nginx reads no environment, so this writes its configuration first, into a directory of this task's own.
set -eu
: "${PORT:?PORT is set by Shoal for a service with ports}"
: "${SHOAL_SERVICE_APP:?SHOAL_SERVICE_APP is set by Shoal when app shares a network with this service}"
dir="${TMPDIR:-/tmp}/shoal-nginx-${SHOAL_ALLOC_ID:-$$}"
rm -rf "$dir"
mkdir -p "$dir"
chmod 755 "$dir"
cat > "$dir/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log stderr warn;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  upstream app {
    server $SHOAL_SERVICE_APP;
    keepalive 16;
  }
  server {
    listen 127.0.0.1:$PORT;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout;
    }
  }
}
CONF
echo "nginx listening on 127.0.0.1:$PORT, proxying to app at $SHOAL_SERVICE_APP"
exec nginx -c "$dir/nginx.conf" -p "$dir"
