#!/usr/bin/env bash
# Re-vendor the report's JavaScript libraries from the npm registry (run by a maintainer, not at
# install time). Copies each library's minified browser build here, drops source-map comments
# (nothing in the report may point at another file), copies the licences, and prints the
# versions and SHA-256 sums to record in README.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm init -y >/dev/null
npm install --no-audit --no-fund --ignore-scripts sigma@3.0.3 graphology@0.26.0 echarts@6.1.0 >/dev/null
copy() {  # package, file in the package, name here
    sed -e 's#//[#@] sourceMappingURL=.*$##' "node_modules/$1/$2" > "$here/$3"
    if grep -qiE '</script|<!--' "$here/$3"; then echo "$3 contains </script or <!--" >&2; exit 1; fi
    echo "$1 $(node -p "require('./node_modules/$1/package.json').version") $3 $(sha256sum "$here/$3" | cut -c1-64)"
}
copy sigma dist/sigma.min.js sigma.min.js
copy graphology dist/graphology.umd.min.js graphology.umd.min.js
copy echarts dist/echarts.min.js echarts.min.js
cp node_modules/sigma/LICENSE.txt "$here/licenses/sigma-LICENSE.txt"
cp node_modules/graphology/LICENSE.txt "$here/licenses/graphology-LICENSE.txt"
cp node_modules/echarts/LICENSE "$here/licenses/echarts-LICENSE.txt"
cp node_modules/echarts/NOTICE "$here/licenses/echarts-NOTICE.txt"
cp node_modules/zrender/LICENSE "$here/licenses/zrender-LICENSE.txt"
