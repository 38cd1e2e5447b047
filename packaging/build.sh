#!/bin/sh
# Build the packaged app: dist/crm-desktop/ (PyInstaller one folder: the `crm-desktop` executable, the desktop entry,
# AppStream metainfo and icons under share/) and dist/crm-desktop-<version>-linux-x86_64.tar.gz of it.
# Usage: sh packaging/build.sh [VENV]   (default .venv; `make package` sets it up first)
# Fails when the folder is over the size budget (CRM_DESKTOP_PACKAGE_BUDGET_MB, default 250 MB unpacked).
set -eu
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
BUDGET_MB=${CRM_DESKTOP_PACKAGE_BUDGET_MB:-250}
PY="$VENV/bin/python"
started=$(date +%s)

"$PY" -c "import PyInstaller, PIL" 2>/dev/null || "$VENV/bin/pip" install -q -e '.[package]'
version=$("$PY" -c "import crm_desktop; print(crm_desktop.__version__)")
arch=$(uname -m)

rm -rf build/icons build/pyinstaller dist/crm-desktop "dist/crm-desktop-$version-linux-$arch.tar.gz"
"$PY" packaging/render_icons.py build/icons
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN --distpath dist --workpath build/pyinstaller \
    packaging/crm-desktop.spec
"$PY" packaging/check_contents.py build/pyinstaller/crm-desktop/PYZ-00.toc dist/crm-desktop/_internal

share=dist/crm-desktop/share
mkdir -p "$share/applications" "$share/metainfo" "$share/icons"
cp packaging/crm-desktop.desktop "$share/applications/"
sed "s/@VERSION@/$version/; s/@DATE@/$(date -u +%Y-%m-%d)/" packaging/crm-desktop.metainfo.xml \
    > "$share/metainfo/io.github.crmdesktop.CrmDesktop.metainfo.xml"
cp -r build/icons/hicolor "$share/icons/"
cp build/icons/crm-desktop.ico "$share/icons/"

size_mb=$(du -sm dist/crm-desktop | cut -f1)
tarball="dist/crm-desktop-$version-linux-$arch.tar.gz"
tar -C dist -czf "$tarball" crm-desktop
tar_mb=$(du -m "$tarball" | cut -f1)
echo "built dist/crm-desktop/ ($size_mb MB unpacked, budget $BUDGET_MB MB) and $tarball ($tar_mb MB)" \
     "in $(( $(date +%s) - started )) s"
if [ "$size_mb" -gt "$BUDGET_MB" ]; then
    echo "package too large: $size_mb MB unpacked is over the $BUDGET_MB MB budget; largest parts:" >&2
    du -sm dist/crm-desktop/_internal/* | sort -rn | head -15 >&2
    exit 1
fi
