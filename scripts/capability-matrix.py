#!/usr/bin/env python3
"""The table at the end of `make check`: for each capability-dependent area, where this run
exercised it (host, host masked, nested host) or why it was skipped there.

Reads the ledger files the test processes wrote (Tests/TestSupport/CapabilityLedger.swift):
tab-separated lines of context, area, available|missing|ran, detail.
"""
import sys

AREAS = [
    ("attributes_backend", "attributes backend"),
    ("guest_memfd_store", "guest_memfd private store"),
    ("memfd_store", "memfd private store"),
    ("memory_fault_exit", "KVM_EXIT_MEMORY_FAULT (exit 39)"),
    ("hypercall_exit", "KVM_EXIT_HYPERCALL (MAP_GPA_RANGE)"),
    ("pv_port", "PV conversion port"),
]


def read(paths):
    contexts, availability, runs = [], {}, {}
    for path in paths:
        try:
            lines = open(path, encoding="utf-8").read().splitlines()
        except OSError as error:
            print(f"capability-matrix: cannot read {path}: {error}", file=sys.stderr)
            continue
        for line in lines:
            fields = line.split("\t")
            if len(fields) != 4:
                continue
            context, area, status, detail = fields
            if context not in contexts:
                contexts.append(context)
            if status == "ran":
                runs[(context, area)] = runs.get((context, area), 0) + 1
            else:
                availability.setdefault((context, area), (status, detail))
    return contexts, availability, runs


def main(paths):
    contexts, availability, runs = read(paths)
    if not contexts:
        print("capability matrix: no test process wrote a ledger (MEMGATE_LEDGER), so there is nothing to show")
        return 1
    notes, cells = [], {}
    for context in contexts:
        for area, _ in AREAS:
            count = runs.get((context, area), 0)
            status, detail = availability.get((context, area), ("available", ""))
            if count:
                cells[(context, area)] = f"ran ({count} guest{'' if count == 1 else 's'})"
            elif status == "missing":
                if detail not in notes:
                    notes.append(detail)
                cells[(context, area)] = f"skipped [{notes.index(detail) + 1}]"
            else:
                cells[(context, area)] = "available, not exercised"
    width = [max(len(label) for _, label in AREAS)] + [
        max(len(context), *(len(cells[(context, area)]) for area, _ in AREAS)) for context in contexts]
    def row(values):
        return "  ".join(value.ljust(width[index]) for index, value in enumerate(values)).rstrip()
    print("== capability matrix: where this run exercised each area that depends on the host's KVM")
    print(row(["area"] + contexts))
    for area, label in AREAS:
        print(row([label] + [cells[(context, area)] for context in contexts]))
    for index, note in enumerate(notes):
        print(f"[{index + 1}] {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
