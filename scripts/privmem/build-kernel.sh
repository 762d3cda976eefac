#!/usr/bin/env bash
# Builds the nested test host's kernel: Debian's linux-source-6.12, `make tinyconfig`,
# then scripts/privmem/kernel.fragment. Cached under .build/privmem/ by the hash of the
# fragment, this script and the source tarball: rebuilt only when one of them changes.
# Prints the path of the bzImage on its last line.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
fragment=scripts/privmem/kernel.fragment
tarball=/usr/src/linux-source-6.12.tar.xz
out=.build/privmem
[ -f "$tarball" ] || { echo "build-kernel: $tarball is missing (apt package linux-source-6.12; make deps installs it)" >&2; exit 1; }
key=$(cat "$fragment" "$0" | sha256sum | cut -c1-16)-$(stat -c %s-%Y "$tarball")
image=$out/bzImage-$key
if [ -f "$image" ]; then echo "$root/$image"; exit 0; fi

mkdir -p "$out"
source_dir=$out/linux-6.12
if [ ! -f "$source_dir/Makefile" ]; then
  echo "build-kernel: unpacking $tarball" >&2
  rm -rf "$source_dir" "$out/linux-source-6.12"
  tar -C "$out" -xJf "$tarball"
  mv "$out/linux-source-6.12" "$source_dir"
fi
started=$(date +%s)
# One build directory: a changed fragment rebuilds only what the new configuration touches.
build=$out/kbuild
mkdir -p "$build"
make -s ARCH=x86_64 -C "$source_dir" O="$root/$build" tinyconfig >&2
"$source_dir/scripts/kconfig/merge_config.sh" -m -O "$build" "$build/.config" "$fragment" >&2
make -s ARCH=x86_64 -C "$source_dir" O="$root/$build" olddefconfig >&2
# Every option the fragment asks for must have survived (a missing dependency drops it silently).
missing=""
while read -r line; do
  case "$line" in CONFIG_*=*) grep -qx "$line" "$build/.config" || missing="$missing $line" ;; esac
done < "$fragment"
if [ -n "$missing" ]; then echo "build-kernel: these options did not survive olddefconfig:$missing" >&2; exit 1; fi
make -s ARCH=x86_64 -C "$source_dir" O="$root/$build" -j"$(nproc)" bzImage >&2
cp "$build/arch/x86/boot/bzImage" "$image"
cp "$build/.config" "$image.config"
echo "build-kernel: built in $(( $(date +%s) - started )) s" >&2
echo "$root/$image"
