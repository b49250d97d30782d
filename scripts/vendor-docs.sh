#!/usr/bin/env bash
# Refreshes the vendored files of the two documentation pages that the docs
# function serves, so neither page needs a CDN: ReDoc's standalone bundle
# (npm `redoc`, /redoc/…) and Swagger UI's (npm `swagger-ui-dist`, /docs/…).
# Stored gzip-compressed (`*.gz`, gzip -9n: the same bytes on every run):
# the function sends them as they are with `Content-Encoding: gzip` to every
# client that accepts gzip, which keeps the docs binary under 6 MB; the rare
# client that does not gets them decompressed on the fly.
# Pinned: change a version and its integrity together
# (`npm view PACKAGE@X dist.integrity`). Needs npm (the registry only); the
# result is committed.
set -euo pipefail
cd "$(dirname "$0")/.."

REDOC_VERSION="2.5.4"
REDOC_INTEGRITY="sha512-M6jWhG1qoBnH6TFmzJnstyCZ87HmOY/UzDm78mHiYihEdlV/YcS9ogOo1NlElnJMeLsyxHFe2yFc4sNjHTrABQ=="
SWAGGER_UI_VERSION="5.32.6"
SWAGGER_UI_INTEGRITY="sha512-75ttZNaYCLoFPnozPZcTUU6mS3wKT8l7WLjU5zJSHFeJa23i5vtnze6IiCl4jDMPeQTXVXIgovq4M11NNfQvSA=="

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# fetch NAME VERSION INTEGRITY: the package unpacked in $work/NAME.
fetch() {
  local name="$1" version="$2" integrity="$3"
  (cd "$work" && npm pack --silent "$name@$version" > /dev/null)
  local tarball="$work/$name-$version.tgz"
  local actual
  actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  if [ "$actual" != "$integrity" ]; then
    echo "$name@$version: integrity $actual, expected $integrity" >&2
    exit 1
  fi
  mkdir -p "$work/$name"
  tar -xzf "$tarball" -C "$work/$name"
}

# compress SRC DEST_DIR: DEST_DIR/<name>.gz
compress() {
  gzip -9 -n -c "$1" > "$2/$(basename "$1").gz"
}

dest="shared/assets/redoc"
fetch redoc "$REDOC_VERSION" "$REDOC_INTEGRITY"
rm -rf "$dest" && mkdir -p "$dest"
compress "$work/redoc/package/bundles/redoc.standalone.js" "$dest"
cp "$work/redoc/package/bundles/redoc.standalone.js.LICENSE.txt" "$dest/"
cp "$work/redoc/package/LICENSE" "$dest/LICENSE"
echo "redoc@$REDOC_VERSION" > "$dest/VERSION"

# The files the /docs page loads. Its own index.html and
# swagger-initializer.js are not taken: the page and the initializer (this
# API's document, no validator) are in shared/src/handlers/docs.rs.
dest="shared/assets/swagger-ui"
fetch swagger-ui-dist "$SWAGGER_UI_VERSION" "$SWAGGER_UI_INTEGRITY"
rm -rf "$dest" && mkdir -p "$dest"
for file in swagger-ui-bundle.js swagger-ui-standalone-preset.js swagger-ui.css index.css; do
  compress "$work/swagger-ui-dist/package/$file" "$dest"
done
# PNGs are compressed already: as they are.
cp "$work/swagger-ui-dist/package/favicon-32x32.png" "$work/swagger-ui-dist/package/favicon-16x16.png" "$dest/"
cp "$work/swagger-ui-dist/package/LICENSE" "$dest/LICENSE"
[ -f "$work/swagger-ui-dist/package/NOTICE" ] && cp "$work/swagger-ui-dist/package/NOTICE" "$dest/NOTICE"
echo "swagger-ui-dist@$SWAGGER_UI_VERSION" > "$dest/VERSION"

du -b shared/assets/redoc/* shared/assets/swagger-ui/*
