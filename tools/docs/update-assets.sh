#!/usr/bin/env bash
# Refreshes internal/docs/assets/ from the swagger-ui-dist version pinned in package-lock.json.
# Run it after changing the pinned version, then commit the assets: the Go build embeds them and
# needs neither npm nor the network. node_modules/ stays uncommitted.
#
#   npm install --save-exact --ignore-scripts swagger-ui-dist@5.x.y   # to move the pin
#   ./update-assets.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dest="$here/../../internal/docs/assets"
cd "$here"

# --ignore-scripts: swagger-ui-dist depends on @scarf/scarf, whose postinstall script reports the
# install to a third party. Nothing here needs an install script.
SCARF_ANALYTICS=false npm ci --ignore-scripts --no-audit --no-fund

src="$here/node_modules/swagger-ui-dist"
version="$(node -p 'require(process.argv[1]).version' "$src/package.json")"

# Exactly what the page loads, plus the licence texts the Apache-2.0 licence (LICENSE, NOTICE)
# and the bundled MIT-licensed dependencies (swagger-ui-bundle.js.LICENSE.txt, which the bundle's
# first line points to) require to travel with it. No source maps, no standalone preset, no dist
# index.html (it uses inline scripts).
files=(
	swagger-ui-bundle.js
	swagger-ui-bundle.js.LICENSE.txt
	swagger-ui.css
	favicon-32x32.png
	LICENSE
	NOTICE
)

rm -rf "$dest"
mkdir -p "$dest"
for f in "${files[@]}"; do
	cp "$src/$f" "$dest/$f" # byte for byte, so they can be checked against the package
done

echo "swagger-ui-dist $version -> internal/docs/assets:"
ls -l "$dest"
