# postern - thin wrapper around meson for the two everyday commands:
#   make run     install what is missing, build, start posternd (embedded config)
#   make check   install what is missing, build (gcc and clang+sanitizers), run every test
BUILD      ?= build
ASAN_BUILD ?= build-asan
PREFIX     ?= /usr/local
DESTDIR    ?=
PYTHON     ?= /usr/bin/python3

.PHONY: all deps build build-asan check run install fmt fmt-check fuzz bench clean

all: build

deps:
	@scripts/deps

$(BUILD)/build.ninja:
	meson setup $(BUILD) --prefix=$(PREFIX)

$(ASAN_BUILD)/build.ninja:
	CC=clang meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false --buildtype=debug

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

build-asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

check: build build-asan
	@scripts/checksrc
	@git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror || { echo "clang-format: run make fmt"; exit 1; }
	@$(PYTHON) tests/run.py $(BUILD) $(ASAN_BUILD)

run: build
	@mkdir -p var
	$(BUILD)/src/posternd/posternd --embedded

install: build
	meson configure $(BUILD) --prefix=$(PREFIX) >/dev/null
	ninja -C $(BUILD)
	DESTDIR=$(DESTDIR) meson install -C $(BUILD) --no-rebuild
	install -d $(DESTDIR)$(PREFIX)/lib/systemd/system
	sed 's|/usr/local/|$(PREFIX)/|g' contrib/posternd.service > $(DESTDIR)$(PREFIX)/lib/systemd/system/posternd.service
	install -D -m 0644 docs/postern.conf.example $(DESTDIR)$(PREFIX)/share/doc/postern/postern.conf.example
	install -d $(DESTDIR)$(PREFIX)/sbin
	ln -sfn ../bin/postern $(DESTDIR)$(PREFIX)/sbin/sendmail
	ln -sfn postern $(DESTDIR)$(PREFIX)/bin/mailq

fmt:
	git ls-files '*.c' '*.h' | xargs clang-format -i

fmt-check:
	git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror

fuzz: deps
	CC=clang meson setup build-fuzz -Dfuzzer=true -Db_sanitize=address,undefined -Db_lundef=false || true
	ninja -C build-fuzz

bench: build
	bench/smtp-inbound $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
