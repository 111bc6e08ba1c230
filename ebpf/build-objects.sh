#!/bin/sh
# Compile ebpf/bpf/*.bpf.c into the committed objects under ebpf/obj/ and
# record the sha256 of the sources they were built from in obj/SOURCES.sha256.
# Run after any change under ebpf/bpf/ and commit the result; the test
# `objects_are_fresh` fails while the record does not match the sources.
set -eu
cd "$(dirname "$0")"
CLANG="${CLANG:-clang-19}"
command -v "$CLANG" >/dev/null || { echo "build-objects.sh: $CLANG not found (apt-get install clang-19 libbpf-dev)" >&2; exit 1; }
mkdir -p obj
for src in bpf/*.bpf.c; do
	name=$(basename "$src" .c)
	"$CLANG" -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_x86 \
		-I/usr/include/x86_64-linux-gnu -Ibpf -c "$src" -o "obj/$name.o"
	# Keep the BTF and .BTF.ext (CO-RE relocations), drop DWARF: the objects stay small.
	llvm-strip-19 -g "obj/$name.o" 2>/dev/null || true
	echo "built obj/$name.o"
done
# Every file under bpf/ feeds every object (they share the headers).
(cd bpf && LC_ALL=C sha256sum $(LC_ALL=C ls)) > obj/SOURCES.sha256
echo "wrote obj/SOURCES.sha256"
