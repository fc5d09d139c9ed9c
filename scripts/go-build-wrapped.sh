#!/usr/bin/env bash
# go-build-wrapped.sh NAME MODULE VERSION MAIN_PACKAGE OUTPUT [LDFLAGS]
#
# Builds MAIN_PACKAGE of MODULE@VERSION into OUTPUT. `go install` refuses
# modules whose go.mod has replace directives (beats), so this generates
# a throwaway wrapper module under ${ACCESSLOG_CACHE:-~/.cache/accesslog-exporter}
# that requires the module, copies its replace and exclude directives (except
# those pointing into its own tree), imports the main package from a file
# behind a build tag, and builds it. Nothing is written into the work tree.
# Callers (install-filebeat.sh) check versions and lock.
set -euo pipefail
name=$1 mod=$2 version=$3 main=$4 out=$5 ldflags=${6:-}
GO=${GO:-go}
cache=${ACCESSLOG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/accesslog-exporter}
wrap="$cache/$name-wrapper-$version"
tag="${name}wrapper"

rm -rf "$wrap"
mkdir -p "$wrap"
cd "$wrap"
export GOFLAGS=-mod=mod
gomod=$($GO mod download -json "$mod@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
[ -f "$gomod" ] || { echo "go-build-wrapped: cannot find go.mod of $mod@$version" >&2; exit 1; }
goversion=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod" | head -1)

{
  echo "module accesslog-exporter.local/$tag"
  echo
  echo "go ${goversion:-1.21}"
  echo
  echo "require $mod $version"
  echo
  awk '
    /^(replace|exclude)[[:space:]]*\($/ { blk=$1; print; next }
    blk != "" && /^\)/ { print; blk=""; next }
    blk != "" { if ($0 ~ /=>[[:space:]]*\.\.?\//) next; print; next }
    /^(replace|exclude)[[:space:]]/ { if ($0 ~ /=>[[:space:]]*\.\.?\//) next; print }
  ' "$gomod"
} > go.mod

# The tag keeps the wrapper's own package out of ordinary builds; it must not
# be a tag the wrapped module uses itself (some modules' dependencies use "tools").
cat > tools.go <<GO
//go:build $tag

package $tag

import _ "$main"
GO

$GO mod tidy -e >&2
$GO build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$main" >&2
mv "$out.tmp" "$out"
