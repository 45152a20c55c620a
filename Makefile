# Fintegrate — one Makefile for the service, its tests and the stack.
#
#   make run         install missing packages, build, start the whole stack
#   make stop        stop it
#   make test        build, unit tests, then integration tests against an
#                    isolated stack that is always torn down (SAN=1: under
#                    AddressSanitizer + UBSan)
#   make broker-stop / broker-start   the RabbitMQ outage drill
#   make cluster / cluster-stop       2 app nodes, 3 RabbitMQ nodes, PG primary + standby
#   make chaos       faults under load against that cluster (scripts/chaos.sh)
#   make lint        cppcheck + clang-tidy;  make format-check
#   make fuzz        every libFuzzer target of tests/fuzz/ for FUZZ_SECONDS
#                    each (default 60); `make test` replays their corpora

CC      ?= cc
PKGS    := libpq librabbitmq jansson uuid fcgi libcrypto
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
           -Wstrict-prototypes -Wformat=2 -fno-strict-aliasing -MMD -MP \
           -I.
LDLIBS  :=
# make Q= shows the full command lines
Q       ?= @

ifeq ($(FUZZ),1)
  # the objects of `make fuzz` (clang, libFuzzer's coverage, ASan + UBSan)
  BUILD   := build/fuzz
  CC      := clang
  CFLAGS  += -O1 -fno-omit-frame-pointer \
             -fsanitize=fuzzer-no-link,address,undefined \
             -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
else ifeq ($(SAN),1)
  BUILD   := build/san
  CFLAGS  += -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
             -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
else
  BUILD   := build/release
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
TEST_CFLAGS := $(shell pkg-config --cflags cmocka libcurl 2>/dev/null)
TEST_LIBS   := $(shell pkg-config --libs cmocka libcurl 2>/dev/null)

# common/: what the service, the consumer program and the tools share
# (log, strbuf, text, clock, AMQP helpers, topology names), built once as
# a static library.  Sources include it as "common/<name>.h" (-I.).
COMMON_SRC := $(sort $(wildcard common/*.c))
COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/%.o)
COMMON_LIB := $(BUILD)/libfintegrate-common.a

APP_SRC   := $(sort $(wildcard fcgi-app/*/*.c))
APP_OBJ   := $(APP_SRC:%.c=$(BUILD)/%.o)
LIB_OBJ   := $(filter-out $(BUILD)/fcgi-app/proc/main.o,$(APP_OBJ))

UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit/%)
ITEST_SRC := $(wildcard tests/integration/test_*.c)
ITEST_BIN := $(ITEST_SRC:tests/integration/%.c=$(BUILD)/tests/integration/%)
ITEST_LIB := $(addprefix $(BUILD)/tests/integration/,itest.o itest_amqp.o)

.PHONY: all build tests run stop test unit deps broker-stop broker-start \
        cluster cluster-stop chaos \
        lint format format-check clean bench valgrind

all: build

build: bin/fintegrate-fcgi bin/fintegrate-consumer

deps:
	@scripts/install-deps.sh

$(COMMON_LIB): $(COMMON_OBJ)
	@echo "  AR      $@"
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/fintegrate-fcgi: $(APP_OBJ) $(COMMON_LIB)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

# bin/ always holds the flavour built last (release or SAN=1).
bin/fintegrate-fcgi: $(BUILD)/fintegrate-fcgi FORCE
	@mkdir -p bin
	@cmp -s $< $@ || { cp $< $@.tmp && mv -f $@.tmp $@; }

FORCE:

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) $(PKG_CFLAGS) $(TEST_CFLAGS) -c -o $@ $<

$(BUILD)/tests/unit/%: tests/unit/%.c $(LIB_OBJ) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(PKG_CFLAGS) $(TEST_CFLAGS) -Ifcgi-app $(LDFLAGS) \
	    -o $@ $< $(LIB_OBJ) $(COMMON_LIB) $(PKG_LIBS) $(TEST_LIBS)

$(BUILD)/tests/integration/%: tests/integration/%.c $(ITEST_LIB)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(PKG_CFLAGS) $(TEST_CFLAGS) $(LDFLAGS) \
	    -o $@ $< $(ITEST_LIB) $(PKG_LIBS) $(TEST_LIBS)

# test_db_rules drives db/db.c itself against the test stack's PostgreSQL.
$(BUILD)/tests/integration/test_db_rules: tests/integration/test_db_rules.c \
                                          $(ITEST_LIB) $(LIB_OBJ) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(PKG_CFLAGS) $(TEST_CFLAGS) -Ifcgi-app $(LDFLAGS) \
	    -o $@ $< $(ITEST_LIB) $(LIB_OBJ) $(COMMON_LIB) $(PKG_LIBS) $(TEST_LIBS)

tests: $(UNIT_BIN) $(ITEST_BIN)

run: deps
	@$(MAKE) --no-print-directory build
	@scripts/stack.sh up
	@echo "  consumer program (README.md, \"The consumer program\"):"
	@echo "    FINTEGRATE_CONSUMER_NAME=<consumer_name> FINTEGRATE_API_KEY=<its key> \\"
	@echo "    FINTEGRATE_BASE_URL=$${FINTEGRATE_BASE_URL:-http://127.0.0.1:$${FINTEGRATE_HTTP_PORT:-8080}} bin/fintegrate-consumer"
	@[ "$${FINTEGRATE_AMQP_PORT:-5672}" = 5672 ] || \
	    echo "    (and FINTEGRATE_AMQP_URL=amqp://guest:guest@127.0.0.1:$$FINTEGRATE_AMQP_PORT)"

stop:
	@scripts/stack.sh down

test: deps
	@$(MAKE) --no-print-directory build tests
	@scripts/static-checks.sh
	@FINTEGRATE_TEST_BIN_DIR=$(CURDIR)/$(BUILD)/tests \
	    FINTEGRATE_FCGI_BIN=$(CURDIR)/$(BUILD)/fintegrate-fcgi \
	    FINTEGRATE_CONSUMER_BIN=$(CURDIR)/$(BUILD)/fintegrate-consumer \
	    scripts/test.sh

unit: build $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do $$t; done

# The distributed stack on this machine (scripts/cluster.sh) and the fault
# run against it (scripts/chaos.sh; `make test` runs its short form).
cluster: deps
	@$(MAKE) --no-print-directory build chaos-tool
	@scripts/cluster.sh up

cluster-stop:
	@scripts/cluster.sh down

chaos: deps
	@$(MAKE) --no-print-directory build chaos-tool
	@scripts/chaos.sh

broker-stop:
	@scripts/stack.sh broker-stop

broker-start:
	@scripts/stack.sh broker-start

bench: build chaos-tool
	@scripts/bench.sh

valgrind: build $(ITEST_BIN)
	@FINTEGRATE_TEST_BIN_DIR=$(CURDIR)/$(BUILD)/tests scripts/valgrind.sh

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	    --inline-suppr --suppress=missingIncludeSystem \
	    -D__GNUC__ -I. $(COMMON_SRC) $(APP_SRC)
	clang-tidy --quiet $(COMMON_SRC) $(APP_SRC) -- \
	    $(filter-out -MMD -MP,$(CFLAGS)) $(PKG_CFLAGS)

FMT_SRC := $(COMMON_SRC) $(wildcard common/*.h) $(APP_SRC) \
           $(wildcard fcgi-app/*/*.h)

format:
	clang-format -i $(FMT_SRC)

format-check:
	clang-format --dry-run --Werror $(FMT_SRC)

clean:
	rm -rf build bin

-include $(COMMON_OBJ:.o=.d) $(APP_OBJ:.o=.d)
# test binaries are compiled and linked in one step: their .d sits beside them
-include $(UNIT_BIN:=.d) $(ITEST_BIN:=.d) $(ITEST_LIB:.o=.d)

# ---- consumer program (issue 6) ---------------------------------------------
# bin/fintegrate-consumer from consumer/*.c and the common library (it
# includes nothing of fcgi-app/); its unit tests (test_reorder,
# test_consumer_*) link consumer/ minus main.o.
CONSUMER_SRC      := $(sort $(wildcard consumer/*.c))
CONSUMER_OBJ      := $(CONSUMER_SRC:%.c=$(BUILD)/%.o)
CONSUMER_LIB_OBJ  := $(filter-out $(BUILD)/consumer/main.o,$(CONSUMER_OBJ))
CONSUMER_LIBS     := $(PKG_LIBS) $(shell pkg-config --libs libcurl 2>/dev/null)
CONSUMER_UNIT_BIN := $(addprefix $(BUILD)/tests/unit/,test_reorder \
                     $(notdir $(basename $(wildcard tests/unit/test_consumer_*.c))))

$(BUILD)/fintegrate-consumer: $(CONSUMER_OBJ) $(COMMON_LIB)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(CONSUMER_LIBS) $(LDLIBS)

bin/fintegrate-consumer: $(BUILD)/fintegrate-consumer FORCE
	@mkdir -p bin
	@cmp -s $< $@ || { cp $< $@.tmp && mv -f $@.tmp $@; }

$(CONSUMER_UNIT_BIN): $(BUILD)/tests/unit/%: tests/unit/%.c $(CONSUMER_LIB_OBJ) \
                      $(COMMON_LIB)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(PKG_CFLAGS) $(TEST_CFLAGS) $(LDFLAGS) \
	    -o $@ $< $(CONSUMER_LIB_OBJ) $(COMMON_LIB) $(CONSUMER_LIBS) $(TEST_LIBS)

# make lint / format / format-check cover consumer/ too
.PHONY: consumer-lint consumer-format consumer-format-check
lint: consumer-lint
format: consumer-format
format-check: consumer-format-check

consumer-lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	    --inline-suppr --suppress=missingIncludeSystem \
	    -D__GNUC__ -I. $(CONSUMER_SRC)
	clang-tidy --quiet $(CONSUMER_SRC) -- $(filter-out -MMD -MP,$(CFLAGS)) \
	    $(PKG_CFLAGS) $(shell pkg-config --cflags libcurl 2>/dev/null)

consumer-format:
	clang-format -i $(CONSUMER_SRC) $(wildcard consumer/*.h)

consumer-format-check:
	clang-format --dry-run --Werror $(CONSUMER_SRC) $(wildcard consumer/*.h)

-include $(CONSUMER_OBJ:.o=.d)

# ---- chaos tool (issue 11) --------------------------------------------------
# bin/fintegrate-chaos (load driver, reporter, verifier of scripts/chaos.sh)
# from tests/chaos/*.c and the common library; its unit tests (test_chaos_*)
# link tests/chaos/ minus main.o.
CHAOS_SRC      := $(sort $(wildcard tests/chaos/*.c))
CHAOS_OBJ      := $(CHAOS_SRC:%.c=$(BUILD)/%.o)
CHAOS_LIB_OBJ  := $(filter-out $(BUILD)/tests/chaos/main.o,$(CHAOS_OBJ)) \
                  $(COMMON_LIB)
CHAOS_LIBS     := $(shell pkg-config --libs libcurl libpq jansson uuid 2>/dev/null) -lm
CHAOS_UNIT_BIN := $(addprefix $(BUILD)/tests/unit/,\
                  $(notdir $(basename $(wildcard tests/unit/test_chaos_*.c))))
CHAOS_FMT      := $(CHAOS_SRC) $(wildcard tests/chaos/*.h tests/unit/test_chaos_*.c)

.PHONY: chaos-tool chaos-lint chaos-format chaos-format-check
chaos-tool: bin/fintegrate-chaos
tests: chaos-tool

$(BUILD)/tests/chaos/fintegrate-chaos: $(CHAOS_OBJ) $(COMMON_LIB)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(CHAOS_LIBS) $(LDLIBS)

bin/fintegrate-chaos: $(BUILD)/tests/chaos/fintegrate-chaos FORCE
	@mkdir -p bin
	@cmp -s $< $@ || { cp $< $@.tmp && mv -f $@.tmp $@; }

$(CHAOS_UNIT_BIN): $(BUILD)/tests/unit/%: tests/unit/%.c $(CHAOS_LIB_OBJ)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(PKG_CFLAGS) $(TEST_CFLAGS) -Itests/chaos $(LDFLAGS) \
	    -o $@ $< $(CHAOS_LIB_OBJ) $(CHAOS_LIBS) $(TEST_LIBS)

lint: chaos-lint
format: chaos-format
format-check: chaos-format-check

chaos-lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	    --inline-suppr --suppress=missingIncludeSystem \
	    -D__GNUC__ -I. $(CHAOS_SRC)
	clang-tidy --quiet $(CHAOS_SRC) -- $(filter-out -MMD -MP,$(CFLAGS)) \
	    $(PKG_CFLAGS) $(TEST_CFLAGS)

chaos-format:
	clang-format -i $(CHAOS_FMT)

chaos-format-check:
	clang-format --dry-run --Werror $(CHAOS_FMT)

-include $(CHAOS_OBJ:.o=.d)

# ---- fuzzing (issue 14) -----------------------------------------------------
# tests/fuzz/fuzz_<name>.c: one libFuzzer target each, its corpus in the
# folder tests/fuzz/fuzz_<name>/ beside it.  `make fuzz` builds them with
# clang -fsanitize=fuzzer,address,undefined (FUZZ=1: objects in build/fuzz/)
# and runs each for FUZZ_SECONDS (scripts/fuzz.sh; FUZZ_TARGETS picks some).
# `make test` replays every corpus with the ordinary build instead: each
# target is linked with tests/fuzz/replay_main.c into
# $(BUILD)/tests/unit/test_fuzz_<name>, which scripts/test.sh runs like any
# unit test (the corpus path is compiled in).  Targets need no database and
# no broker.
FUZZ_TARGET_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_NAMES      := $(FUZZ_TARGET_SRC:tests/fuzz/fuzz_%.c=%)
FUZZ_COMMON     := $(BUILD)/tests/fuzz/common.o
FUZZ_LIB_OBJ    := $(LIB_OBJ) $(CONSUMER_LIB_OBJ) $(COMMON_LIB)
FUZZ_LIBS       := $(CONSUMER_LIBS)
FUZZ_REPLAY_BIN := $(FUZZ_NAMES:%=$(BUILD)/tests/unit/test_fuzz_%)
FUZZ_BIN        := $(FUZZ_NAMES:%=build/fuzz/fuzz_%)
FUZZ_OTHER_SRC  := tests/fuzz/common.c tests/fuzz/replay_main.c
FUZZ_FMT        := $(FUZZ_TARGET_SRC) $(FUZZ_OTHER_SRC) tests/fuzz/common.h

.PHONY: fuzz fuzz-build fuzz-lint fuzz-format fuzz-format-check
tests: $(FUZZ_REPLAY_BIN)

# one replay main per target: its corpus folder is compiled in
FUZZ_REPLAY_OBJ := $(FUZZ_NAMES:%=$(BUILD)/tests/fuzz/replay_%.o)
$(FUZZ_REPLAY_OBJ): $(BUILD)/tests/fuzz/replay_%.o: tests/fuzz/replay_main.c
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(CFLAGS) -DFUZZ_CORPUS_DIR='"$(CURDIR)/tests/fuzz/fuzz_$*"' \
	    -c -o $@ $<

$(FUZZ_REPLAY_BIN): $(BUILD)/tests/unit/test_fuzz_%: tests/fuzz/fuzz_%.c \
                    $(FUZZ_COMMON) $(BUILD)/tests/fuzz/replay_%.o $(FUZZ_LIB_OBJ)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(PKG_CFLAGS) -Ifcgi-app -I. $(LDFLAGS) \
	    -o $@ $< $(FUZZ_COMMON) $(BUILD)/tests/fuzz/replay_$*.o \
	    $(FUZZ_LIB_OBJ) $(FUZZ_LIBS)

# Built by `$(MAKE) FUZZ=1 fuzz-build` (BUILD is build/fuzz then).
fuzz-build: $(FUZZ_BIN)

$(FUZZ_BIN): build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_COMMON) \
             $(FUZZ_LIB_OBJ)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(PKG_CFLAGS) -Ifcgi-app -I. -fsanitize=fuzzer \
	    $(LDFLAGS) -o $@ $< $(FUZZ_COMMON) $(FUZZ_LIB_OBJ) $(FUZZ_LIBS)

fuzz:
	@$(MAKE) --no-print-directory FUZZ=1 fuzz-build
	@FUZZ_TARGETS="$${FUZZ_TARGETS:-$(FUZZ_NAMES)}" scripts/fuzz.sh

lint: fuzz-lint
format: fuzz-format
format-check: fuzz-format-check

fuzz-lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	    --inline-suppr --suppress=missingIncludeSystem \
	    -D__GNUC__ -Ifcgi-app -I. $(FUZZ_TARGET_SRC) $(FUZZ_OTHER_SRC)
	clang-tidy --quiet $(FUZZ_TARGET_SRC) $(FUZZ_OTHER_SRC) -- \
	    $(filter-out -MMD -MP,$(CFLAGS)) $(PKG_CFLAGS) -Ifcgi-app -I.

fuzz-format:
	clang-format -i $(FUZZ_FMT)

fuzz-format-check:
	clang-format --dry-run --Werror $(FUZZ_FMT)

-include $(wildcard $(BUILD)/tests/fuzz/*.d) $(FUZZ_REPLAY_BIN:=.d)
