#!/usr/bin/env bash
# Vendor the browser scripts the built book needs, so the site loads nothing from a CDN:
# the ipywidgets HTML manager and RequireJS (widgets in the static pages) and MathJax (equations).
# They come from the npm registry as package tarballs (no dependency tree) into _vendor/,
# which _config.yml copies into the site. Versions are pinned here; a re-run with them in place
# does nothing.
set -euo pipefail

HTML_MANAGER=1.0.15   # ipywidgets 8.1's __html_manager_version__ is ^1.0.1
REQUIREJS=2.3.7
MATHJAX=3.2.2

dest=${1:-_vendor}
stamp="$dest/.versions-$HTML_MANAGER-$REQUIREJS-$MATHJAX"
[ -f "$stamp" ] && exit 0

command -v npm >/dev/null || { echo "vendor_js.sh: npm is needed to vendor the site's scripts" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "@jupyter-widgets/html-manager@$HTML_MANAGER" \
    "requirejs@$REQUIREJS" "mathjax@$MATHJAX" >/dev/null)
for tgz in "$tmp"/*.tgz; do
    name=$(basename "$tgz" .tgz)
    mkdir -p "$tmp/$name" && tar xzf "$tgz" -C "$tmp/$name"
done

rm -rf "$dest" && mkdir -p "$dest/html-manager" "$dest/mathjax"
cp -r "$tmp/jupyter-widgets-html-manager-$HTML_MANAGER/package/dist/." "$dest/html-manager/"
cp "$tmp/requirejs-$REQUIREJS/package/require.js" "$dest/require.js"
cp -r "$tmp/mathjax-$MATHJAX/package/es5/." "$dest/mathjax/"
rm -f "$dest"/html-manager/*.map
touch "$stamp"
echo "vendored html-manager $HTML_MANAGER, requirejs $REQUIREJS, mathjax $MATHJAX into $dest/"
