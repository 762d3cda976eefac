# MemGate build entry points. `make demo` and `make check` work on a fresh machine:
# they install missing system packages first (as root, or through sudo).

SWIFT        ?= swift
CC           ?= cc
BUILD        := .build
GUEST_OUT    := $(BUILD)/guests
BENCH_OUT    := $(BUILD)/bench
APT_PACKAGES := gcc make pkg-config libcurl4-openssl-dev libsqlite3-dev sqlite3 curl python3 python3-yaml wrk nginx-light libpq-dev postgresql openssl iproute2 chromium fonts-dejavu-core prometheus \
                linux-source-6.12 qemu-system-x86 bc bison flex libelf-dev libssl-dev iptables libnetfilter-queue-dev linux-perf
VENV         := $(BUILD)/venv
# Python tools for the API checks, in a virtual environment (never the system's site-packages).
PY_TOOLS     := openapi-spec-validator schemathesis
GUESTS       := hello smp crash spin-io bootinfo unhandled conversions exits implicit explicit convert-bench churn smp-convert chaos
GUEST_CFLAGS := -std=gnu11 -O2 -ffreestanding -nostdlib -static -fno-pic -no-pie \
                -mno-red-zone -mgeneral-regs-only -fno-stack-protector -fcf-protection=none \
                -fno-asynchronous-unwind-tables -Wall -Wextra -Werror -IGuests/include \
                -Wl,--build-id=none -Wl,-n
SWIFT_FLAGS  := -j 2

.PHONY: all deps preflight build guests demo check lint format test test-masked capability-matrix api-check check-privmem chaos bench-exitloop bench-conversions bench-store bench-http bench-fanout bench-fleet bench-stream bench-lifecycle bench-history bench-privmem profile-privmem clean install

all: build guests

deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; \
	  else echo "need root to install:$$missing" >&2; exit 1; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build $(SWIFT_FLAGS)

guests: $(GUESTS:%=$(GUEST_OUT)/%.elf)

$(GUEST_OUT)/%.elf: Guests/src/%.c Guests/src/selftest.h Guests/src/crt0.S Guests/src/exceptions.c Guests/memgate.ld Guests/include/memgate_guest.h Guests/include/memgate_abi.h
	@mkdir -p $(GUEST_OUT)
	$(CC) $(GUEST_CFLAGS) -T Guests/memgate.ld -o $@ Guests/src/crt0.S Guests/src/exceptions.c $<

# On a host that cannot run MemGate (no /dev/kvm, one this user cannot open, no QEMU and no
# way to install it): one line saying what is missing, before anything is installed or built.
preflight:
	@bash scripts/preflight.sh

demo: preflight build guests
	@bash scripts/demo.sh

check: preflight lint build guests test test-masked api-check check-privmem capability-matrix

# Every test process notes which capability-dependent areas it ran, and why it skipped the
# others (Tests/TestSupport/CapabilityLedger.swift); capability-matrix prints the table.
LEDGER := $(BUILD)/capability-ledger

# The house format (.swift-format: 120 columns, ordered imports, no semicolons joining statements),
# checked with the toolchain's swift-format; `make format` applies it.
FORMATTED := Sources Tests Benchmarks Package.swift
lint:
	$(SWIFT) format lint --strict --recursive --parallel $(FORMATTED)

format:
	$(SWIFT) format --in-place --recursive --parallel $(FORMATTED)

test:
	@rm -rf $(LEDGER) && mkdir -p $(LEDGER)
	MEMGATE_LEDGER=$(CURDIR)/$(LEDGER)/host.tsv $(SWIFT) test $(SWIFT_FLAGS)

# The suites whose path depends on KVM's capabilities, run again with the strongest capability
# this host has hidden (memgate-agent caps --strongest; MEMGATE_KVM_HIDE in the README), so one
# host proves its fallback too: a host with guest_memfd also runs the memfd store.
MASKED_SUITES := ConversionScenarioTests|SMPConversionTests|VCPURunTests|VirtualMachineTests|AttributesBackendHostTests|PrivateMemoryTests|SystemTests|HiddenCapabilitiesHostTests|AgentHostTests|ConversionCLITests
test-masked: build guests
	$(SWIFT) build $(SWIFT_FLAGS) --build-tests
	@mkdir -p $(LEDGER)
	@strongest=$$($(BUILD)/debug/memgate-agent caps --strongest) || exit 1; \
	if [ "$$strongest" = none ]; then echo "test-masked: this host has no capability left to hide"; exit 0; fi; \
	hide=$${MEMGATE_KVM_HIDE:+$$MEMGATE_KVM_HIDE,}$$strongest; \
	echo "== the backend, conversion and alias suites again with MEMGATE_KVM_HIDE=$$hide"; \
	MEMGATE_KVM_HIDE=$$hide MEMGATE_LEDGER=$(CURDIR)/$(LEDGER)/host-masked.tsv \
	  $(SWIFT) test $(SWIFT_FLAGS) --skip-build --filter '$(MASKED_SUITES)'

capability-matrix:
	@python3 scripts/capability-matrix.py $(wildcard $(LEDGER)/host.tsv) $(wildcard $(LEDGER)/host-masked.tsv) $(wildcard $(LEDGER)/nested.tsv)

$(VENV)/.installed:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(PY_TOOLS)
	@touch $@

# openapi.yaml is valid OpenAPI, and a live agent conforms to it (schemathesis, every operation, with a token).
api-check: build guests $(VENV)/.installed
	$(VENV)/bin/openapi-spec-validator openapi.yaml
	VENV=$(VENV) bash scripts/api-conformance.sh

$(BENCH_OUT)/exitloop-c: Benchmarks/ExitLoop/baseline.c Benchmarks/BareVMM/bare_vmm.h Guests/include/memgate_abi.h
	@mkdir -p $(BENCH_OUT)
	$(CC) -O2 -Wall -Wextra -Werror -IGuests/include -IBenchmarks/BareVMM -o $@ $<

bench-exitloop: deps guests $(BENCH_OUT)/exitloop-c
	$(SWIFT) build $(SWIFT_FLAGS) -c release --product bench-exitloop
	$(BUILD)/release/bench-exitloop --guest $(GUEST_OUT)/spin-io.elf --baseline $(BENCH_OUT)/exitloop-c --exits 1000000

# The attributes backend on a real private-memory KVM: our own 6.12 kernel with
# KVM_SW_PROTECTED_VM (built once, cached in .build/privmem) under QEMU TCG, running
# `memgate-agent caps` and the private-memory tests inside. scripts/privmem-run.sh CMD runs anything there.
check-privmem: build guests
	$(SWIFT) build $(SWIFT_FLAGS) --build-tests
	bash scripts/check-privmem.sh

# The checkout is read-only inside the nested host: the RESULT lines come back through its
# transfer directory and are appended to $(BENCH_OUT)/results.txt here.
bench-privmem: deps guests $(BENCH_OUT)/conversions-floor
	$(SWIFT) build $(SWIFT_FLAGS) -c release --product bench-conversions
	@rm -rf $(BENCH_OUT)/privmem-out
	MEMGATE_PRIVMEM_COLLECT=$(CURDIR)/$(BENCH_OUT)/privmem-out bash scripts/privmem-run.sh bash -c \
	  '$(BUILD)/release/bench-conversions --privmem --guest $(GUEST_OUT)/convert-bench.elf \
	   --floor $(BENCH_OUT)/conversions-floor --conversions 20000 --output "$$MEMGATE_PRIVMEM_OUT/results.txt"'
	cat $(BENCH_OUT)/privmem-out/results.txt >> $(BENCH_OUT)/results.txt

# Where bench-privmem's time goes inside the nested host: perf's software cpu-clock sampling
# (TCG has no PMU) over a shorter run of the same three series, by process, library and
# function, Swift names demangled; written to $(BENCH_OUT)/privmem-profile/.
profile-privmem: deps guests $(BENCH_OUT)/conversions-floor
	$(SWIFT) build $(SWIFT_FLAGS) -c release --product bench-conversions
	@rm -rf $(BENCH_OUT)/privmem-profile
	MEMGATE_PRIVMEM_COLLECT=$(CURDIR)/$(BENCH_OUT)/privmem-profile bash scripts/privmem-run.sh bash -c \
	  'set -e; perf record -q -e cpu-clock -F 499 -g -o /tmp/perf.data -- $(BUILD)/release/bench-conversions --privmem \
	     --guest $(GUEST_OUT)/convert-bench.elf --floor $(BENCH_OUT)/conversions-floor --conversions 5000 --rounds 1 \
	     --output "$$MEMGATE_PRIVMEM_OUT/results.txt" > "$$MEMGATE_PRIVMEM_OUT/bench.txt"; \
	   perf report -q -i /tmp/perf.data --no-children --sort comm,dso --stdio > "$$MEMGATE_PRIVMEM_OUT/by-dso.txt"; \
	   perf report -q -i /tmp/perf.data --no-children --sort comm,dso,sym --stdio -g none --percent-limit 0.5 > "$$MEMGATE_PRIVMEM_OUT/by-symbol.txt"'
	swift demangle --simplified < $(BENCH_OUT)/privmem-profile/by-symbol.txt > $(BENCH_OUT)/privmem-profile/by-symbol-demangled.txt
	cat $(BENCH_OUT)/privmem-profile/bench.txt $(BENCH_OUT)/privmem-profile/by-dso.txt
	head -60 $(BENCH_OUT)/privmem-profile/by-symbol-demangled.txt

# Hostile guests for longer: make chaos SECONDS=600
SECONDS ?= 60
chaos: build guests
	MEMGATE_CHAOS_SECONDS=$(SECONDS) $(SWIFT) test $(SWIFT_FLAGS) --filter ChaosTests

clean:
	rm -rf $(BUILD)

# Release binaries, man pages (ArgumentParser's generate-manual) and bash/zsh/fish completions:
# make install [PREFIX=/usr/local] [DESTDIR=/tmp/stage]
PREFIX  ?= /usr/local
MAN_OUT := $(BUILD)/plugins/GenerateManual/outputs
install: deps
	$(SWIFT) build $(SWIFT_FLAGS) -c release --product memgate-agent
	$(SWIFT) build $(SWIFT_FLAGS) -c release --product memgatectl
	$(SWIFT) package generate-manual
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
	  $(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 0755 $(BUILD)/release/memgate-agent $(BUILD)/release/memgatectl $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 $(MAN_OUT)/memgate-agent/memgate-agent.1 $(MAN_OUT)/memgatectl/memgatectl.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	for tool in memgate-agent memgatectl; do \
	  $(BUILD)/release/$$tool --generate-completion-script bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/$$tool; \
	  $(BUILD)/release/$$tool --generate-completion-script zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_$$tool; \
	  $(BUILD)/release/$$tool --generate-completion-script fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/$$tool.fish; \
	done

$(BENCH_OUT)/conversions-floor: Benchmarks/Conversions/floor.c Benchmarks/BareVMM/bare_vmm.h Guests/include/memgate_abi.h
	@mkdir -p $(BENCH_OUT)
	$(CC) -O2 -Wall -Wextra -Werror -IGuests/include -IBenchmarks/BareVMM -o $@ $<

bench-conversions: deps guests $(BENCH_OUT)/conversions-floor
	$(SWIFT) build $(SWIFT_FLAGS) -c release --product bench-conversions
	$(SWIFT) build $(SWIFT_FLAGS) -c release --product memgate-agent
	$(BUILD)/release/bench-conversions --guest $(GUEST_OUT)/convert-bench.elf --floor $(BENCH_OUT)/conversions-floor --conversions 100000 \
	  --agent $(BUILD)/release/memgate-agent

$(BENCH_OUT)/store-c: Benchmarks/Store/baseline.c
	@mkdir -p $(BENCH_OUT)
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $< -lsqlite3

bench-store: deps guests $(BENCH_OUT)/store-c
	$(SWIFT) build $(SWIFT_FLAGS) -c release --product bench-store
	$(SWIFT) build $(SWIFT_FLAGS) -c release --product memgate-agent
	$(BUILD)/release/bench-store --baseline $(BENCH_OUT)/store-c --guest $(GUEST_OUT)/convert-bench.elf --agent $(BUILD)/release/memgate-agent

# VM create → first guest conversion in a VM process against inside the agent, and 32 VMs adopted after a restart.
bench-lifecycle: deps guests
	$(SWIFT) build $(SWIFT_FLAGS) -c release --product memgate-agent
	$(SWIFT) build $(SWIFT_FLAGS) -c release --product bench-lifecycle
	$(BUILD)/release/bench-lifecycle --agent $(BUILD)/release/memgate-agent --guest $(GUEST_OUT)/convert-bench.elf

# A VM's memory at 400 random past moments of 1,000,000 recorded conversions, against a replay from its start.
bench-history: deps
	$(SWIFT) build $(SWIFT_FLAGS) -c release --product bench-history
	$(BUILD)/release/bench-history

bench-http: deps guests
	$(SWIFT) build $(SWIFT_FLAGS) -c release --product memgate-agent
	bash Benchmarks/HTTP/bench-http.sh

# 64 event streams while a guest converts as fast as it can, against no stream; a policy
# replay over 1,000,000 recorded conversions.
$(BENCH_OUT)/stream-readers: Benchmarks/Stream/readers.c
	@mkdir -p $(BENCH_OUT)
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $<

bench-stream: deps guests $(BENCH_OUT)/stream-readers
	$(SWIFT) build $(SWIFT_FLAGS) -c release --product memgate-agent
	$(SWIFT) build $(SWIFT_FLAGS) -c release --product bench-stream
	$(BUILD)/release/bench-stream --agent $(BUILD)/release/memgate-agent --readers $(BENCH_OUT)/stream-readers \
	  --guest $(GUEST_OUT)/convert-bench.elf

# As root: 64 agents in network namespaces 20 ms away (NFQUEUE delay: this kernel has no
# netem), push to all vs one vs one after another; then 10,000 inventory entries on a
# loopback-only namespace (hosts, push, the controller's RSS and descriptors).
$(BENCH_OUT)/fleet-delay: Benchmarks/Fleet/delay.c
	@mkdir -p $(BENCH_OUT)
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $< -lnetfilter_queue

bench-fleet: deps $(BENCH_OUT)/fleet-delay
	$(SWIFT) build $(SWIFT_FLAGS) -c release --product memgate-agent
	$(SWIFT) build $(SWIFT_FLAGS) -c release --product memgatectl
	bash Benchmarks/Fleet/bench-fleet.sh

bench-fanout: deps
	$(SWIFT) build $(SWIFT_FLAGS) -c release --product memgate-agent
	$(SWIFT) build $(SWIFT_FLAGS) -c release --product memgatectl
	bash Benchmarks/Fanout/bench-fanout.sh
