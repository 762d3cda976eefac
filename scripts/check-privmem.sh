#!/usr/bin/env bash
# make check-privmem: the attributes backend on a real private-memory KVM. Boots our own
# kernel (KVM_SW_PROTECTED_VM) under QEMU TCG and runs, inside it, `memgate-agent caps`,
# the test cases that need private memory (they are skipped by name elsewhere), and the
# VMCALL conversions (KVM_EXIT_HYPERCALL reaches userspace on nested SVM).
# Needs the host's debug build and test build (make check's `test` target makes them).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tests=$root/.build/debug/MemGatePackageTests.xctest
agent=$root/.build/debug/memgate-agent
for file in "$tests" "$agent"; do
  [ -x "$file" ] || { echo "check-privmem: $file is missing; run swift build --build-tests first" >&2; exit 1; }
done
filter=${MEMGATE_PRIVMEM_FILTER:-PrivateMemory|AttributesBackendHost|privateMemConversionsOverVMCALL}
started=$(date +%s)
# The nested host's line of the capability matrix (scripts/capability-matrix.py).
export MEMGATE_PRIVMEM_COLLECT=${MEMGATE_PRIVMEM_COLLECT:-$root/.build/capability-ledger}
"$root/scripts/privmem-run.sh" bash -c "
  set -e
  export MEMGATE_LEDGER=\$MEMGATE_PRIVMEM_OUT/nested.tsv MEMGATE_LEDGER_CONTEXT='nested host'
  echo '== memgate-agent caps (nested host: \$(uname -r))'
  '$agent' caps
  echo '== private-memory tests ($filter)'
  '$tests' --testing-library swift-testing --filter '$filter'
"
echo "check-privmem: passed in $(( $(date +%s) - started )) s"
