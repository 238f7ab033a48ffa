#!/usr/bin/env bash
# Release check: build the sdist and the wheel, install the wheel into a clean virtual
# environment (no source tree on the path) and run the quick start, `fixlip demo`.
#
# Usage: bash .ci/check_wheel.sh [WORKDIR]      (default: a fresh temporary folder)
# Needs: python3 with `venv`; `build` is installed into the clean environment if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=${1:-$(mktemp -d -t fixlip-wheel-XXXXXX)}
mkdir -p "$WORK"
PY=${PYTHON:-python3}
SECONDS=0
step() { printf '[check_wheel %4ds] %s\n' "$SECONDS" "$*"; }

step "clean venv in $WORK/venv"
"$PY" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install --quiet --upgrade pip
"$VPY" -m pip install --quiet build

step "build sdist and wheel"
rm -rf "$WORK/dist"
"$VPY" -m build --outdir "$WORK/dist" "$ROOT" >"$WORK/build.log" 2>&1 || {
    tail -40 "$WORK/build.log"
    exit 1
}
WHEEL=$(ls "$WORK"/dist/fixlip_captum-*.whl)
SDIST=$(ls "$WORK"/dist/fixlip_captum-*.tar.gz)
step "built $(basename "$WHEEL") ($(du -k "$WHEEL" | cut -f1) KiB), $(basename "$SDIST")"

step "check the archives' contents"
"$VPY" - "$WHEEL" "$SDIST" <<'EOF'
import sys, tarfile, zipfile

wheel, sdist = sys.argv[1], sys.argv[2]
names = set(zipfile.ZipFile(wheel).namelist())
need = [
    "fixlip_captum/py.typed",
    "fixlip_captum/models/assets/scenes-clip.pt",
    "fixlip_captum/models/assets/scenes-clip.json",
    "fixlip_captum/models/assets/scenes-clip-tokenizer.json",
    "fixlip_captum/cli.py",
    "fixlip_captum/plot/assets/viewer.js",
    "fixlip_captum/plot/assets/viewer.css",
]
missing = [n for n in need if n not in names]
if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
    missing.append("*.dist-info/licenses/LICENSE")
meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
text = zipfile.ZipFile(wheel).read(meta).decode()
for field in ("License-Expression: MIT", "Requires-Python: >=3.10", "Provides-Extra: docs"):
    if field not in text:
        missing.append(f"METADATA {field!r}")
entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
if "fixlip = fixlip_captum.cli:main" not in zipfile.ZipFile(wheel).read(entry).decode():
    missing.append("console script 'fixlip'")
if any(n.startswith(("tests/", "benchmarks/", "docs/")) for n in names):
    missing.append("(tests/benchmarks/docs must not be in the wheel)")
sdist_names = tarfile.open(sdist).getnames()
for n in ("LICENSE", "README.md", "pyproject.toml", "fixlip_captum/models/assets/scenes-clip.pt"):
    if not any(s.endswith("/" + n) for s in sdist_names):
        missing.append(f"sdist: {n}")
if missing:
    sys.exit("missing from the release archives: " + ", ".join(missing))
print(f"wheel: {len(names)} files; sdist: {len(sdist_names)} entries; contents ok")
EOF

step "install torch, torchvision, then the wheel"
"$VPY" -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
"$VPY" -m pip install --quiet "$WHEEL"

step "run the quick start from outside the source tree"
cd "$WORK"
"$VPY" -c "import fixlip_captum, sys; f = fixlip_captum.__file__; print('imported', fixlip_captum.__version__, 'from', f); sys.exit(0 if f.startswith('$WORK/venv') else 'imported from the source tree, not the wheel')"
rm -rf "$WORK/demo"
"$WORK/venv/bin/fixlip" demo --out "$WORK/demo" --no-progress
for f in interactions.json explanation.png viewer.html; do
    test -s "$WORK/demo/$f" || { echo "fixlip demo did not write $f"; exit 1; }
done
step "ok: wheel installs in a clean venv and \`fixlip demo\` runs (total ${SECONDS}s)"
