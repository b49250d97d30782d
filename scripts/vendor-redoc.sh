#!/usr/bin/env bash
# Refreshes the vendored ReDoc bundle that the docs function serves at
# /redoc/redoc.standalone.js, so the page needs no CDN. Pinned: change
# REDOC_VERSION and REDOC_INTEGRITY together (`npm view redoc@X dist.integrity`).
# Needs npm (the registry only); the result is committed.
set -euo pipefail
cd "$(dirname "$0")/.."

REDOC_VERSION="2.5.4"
REDOC_INTEGRITY="sha512-M6jWhG1qoBnH6TFmzJnstyCZ87HmOY/UzDm78mHiYihEdlV/YcS9ogOo1NlElnJMeLsyxHFe2yFc4sNjHTrABQ=="
DEST="shared/assets/redoc"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "redoc@$REDOC_VERSION" > /dev/null)
tarball="$work/redoc-$REDOC_VERSION.tgz"
actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [ "$actual" != "$REDOC_INTEGRITY" ]; then
  echo "redoc@$REDOC_VERSION: integrity $actual, expected $REDOC_INTEGRITY" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$work"
mkdir -p "$DEST"
cp "$work/package/bundles/redoc.standalone.js" "$DEST/"
cp "$work/package/bundles/redoc.standalone.js.LICENSE.txt" "$DEST/"
cp "$work/package/LICENSE" "$DEST/LICENSE"
echo "redoc@$REDOC_VERSION" > "$DEST/VERSION"
echo "==> $DEST: redoc@$REDOC_VERSION ($(wc -c < "$DEST/redoc.standalone.js") bytes)"
