#!/bin/bash
# keepalived's health check of the local nginx: exit 0 when it answers
# GET /nginx-health with 200. Pure bash (/dev/tcp), so it needs nothing
# installed; keepalived's "timeout 2" bounds a hung connection.
# /etc/keepalived/check_nginx.sh, owned by root, mode 0755.
port=${NGINX_HEALTH_PORT:-80}
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET /nginx-health HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
IFS= read -r -t 1 status <&3 || exit 1
[[ $status == HTTP/1.[01]\ 200\ * ]]
