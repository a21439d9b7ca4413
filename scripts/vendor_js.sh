#!/usr/bin/env bash
# Vendor the browser scripts the built book needs, so the site loads nothing from a CDN:
# the ipywidgets HTML manager and RequireJS (widgets in the static pages), MathJax (equations)
# and the Noto Sans SC web font (Chinese text: the Chinese edition, the glossary, the language
# switch), split by fontsource into Unicode ranges that a browser loads only when a page uses
# them. The font's .woff files stay outside the site, in $dest-fonts/: scripts/zh_edition.py
# embeds subsets of them in the Chinese diagrams (an SVG shown as an image loads no font).
# They come from the npm registry as package tarballs (no dependency tree) into _vendor/,
# which _config.yml copies into the site. Versions are pinned here; a re-run with them in place
# does nothing.
set -euo pipefail

HTML_MANAGER=1.0.15   # ipywidgets 8.1's __html_manager_version__ is ^1.0.1
REQUIREJS=2.3.7
MATHJAX=3.2.2
NOTO_SANS_SC=5.3.1  # @fontsource/noto-sans-sc (SIL Open Font License)
FONT_CSS=2  # the version of the CSS this script writes from it (below)

dest=${1:-_vendor}
stamp="$dest/.versions-$HTML_MANAGER-$REQUIREJS-$MATHJAX-$NOTO_SANS_SC-$FONT_CSS"
[ -f "$stamp" ] && exit 0

command -v npm >/dev/null || { echo "vendor_js.sh: npm is needed to vendor the site's scripts" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "@jupyter-widgets/html-manager@$HTML_MANAGER" \
    "requirejs@$REQUIREJS" "mathjax@$MATHJAX" "@fontsource/noto-sans-sc@$NOTO_SANS_SC" >/dev/null)
for tgz in "$tmp"/*.tgz; do
    name=$(basename "$tgz" .tgz)
    mkdir -p "$tmp/$name" && tar xzf "$tgz" -C "$tmp/$name"
done

rm -rf "$dest" && mkdir -p "$dest/html-manager" "$dest/mathjax"
cp -r "$tmp/jupyter-widgets-html-manager-$HTML_MANAGER/package/dist/." "$dest/html-manager/"
cp "$tmp/requirejs-$REQUIREJS/package/require.js" "$dest/require.js"
cp -r "$tmp/mathjax-$MATHJAX/package/es5/." "$dest/mathjax/"
rm -f "$dest"/html-manager/*.map

font="$tmp/fontsource-noto-sans-sc-$NOTO_SANS_SC/package"
rm -rf "$dest-fonts" && mkdir -p "$dest/noto-sans-sc/files" "$dest-fonts"
for weight in 400 700; do
    cp "$font"/files/noto-sans-sc-*-$weight-normal.woff2 "$dest/noto-sans-sc/files/"
    cp "$font"/files/noto-sans-sc-*-$weight-normal.woff "$dest-fonts/"
    cat "$font/$weight.css"
done | python3 -c '
# woff2 only (every browser that runs the site reads it), and only the CJK blocks
# (U+2E80 on): the pages list this font first, so it must leave Latin text to the
# theme fonts. A face left without a range is dropped.
import re, sys
def cjk(face):
    ranges = []
    for part in re.search(r"unicode-range: ([^;]+);", face).group(1).split(","):
        start, _, end = part.strip().removeprefix("U+").partition("-")
        if int(end or start, 16) >= 0x2E80:
            ranges.append("U+%x-%x" % (max(int(start, 16), 0x2E80), int(end or start, 16)))
    if not ranges:
        return ""
    face = re.sub(r", url\([^)]*\.woff\) format\(.woff.\)", "", face)
    return re.sub(r"unicode-range: [^;]+;", "unicode-range: " + ",".join(ranges) + ";", face)
faces = re.findall(r"@font-face \{.*?\}", sys.stdin.read(), re.S)
print("\n".join(f for f in map(cjk, faces) if f))
' > "$dest/noto-sans-sc/noto-sans-sc.css"
cp "$font/LICENSE" "$dest/noto-sans-sc/LICENSE"
touch "$stamp"
echo "vendored html-manager $HTML_MANAGER, requirejs $REQUIREJS, mathjax $MATHJAX," \
     "noto-sans-sc $NOTO_SANS_SC into $dest/"
