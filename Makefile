# Two entry points do all set-up on a fresh machine: `make demo` and `make test`.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c

export QWEN3_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/qwen3
# Builds live in the cache too, so a fresh clone on the same machine reuses them.
export CARGO_TARGET_DIR ?= $(QWEN3_CACHE)/target
export MIX_HOME ?= $(QWEN3_CACHE)/mix
QWEN3_ORACLE_VENV ?= $(QWEN3_CACHE)/oracle-venv
export QWEN3_ORACLE_PYTHON ?= $(QWEN3_ORACLE_VENV)/bin/python
export QWEN3_TOKENIZER_DIR ?= $(QWEN3_CACHE)/tokenizer-qwen3

.PHONY: setup setup-system setup-mlx setup-tokenizer setup-oracle build test test-rust test-elixir \
        lint demo bench bench-8b bench-serving bench-moe bench-micro fuzz soak clean

setup: setup-system setup-mlx setup-tokenizer setup-oracle

setup-system:
	@scripts/setup_system.sh

# MLX's C++ SDK: the same step `mix compile` takes first (mix/mlx.ex); cargo reads MLX_DIR.
setup-mlx: setup-system
	@mix qwen3.mlx >/dev/null

WITH_MLX = MLX_DIR="$${MLX_DIR:-$$(mix qwen3.mlx)}"; export MLX_DIR;

setup-tokenizer:
	@scripts/setup_tokenizer.sh

setup-oracle:
	@scripts/setup_oracle.sh

build: setup-mlx
	mix compile --warnings-as-errors

test: setup lint test-rust test-elixir

# The fixture path depends on the generator's hash: computed in the recipe, not at parse time.
FIXTURES = QWEN3_FIXTURES="$$(QWEN3_ORACLE_VENV=$(QWEN3_ORACLE_VENV) scripts/setup_fixtures.sh)"

test-rust: setup
	$(WITH_MLX) export $(FIXTURES); cargo test --workspace --release

# --include install: a throwaway project builds the NIF from scratch (see install_test.exs).
test-elixir: setup build
	export $(FIXTURES); mix test --include install

lint: setup-mlx
	cargo fmt --all --check
	$(WITH_MLX) cargo clippy --workspace --release --all-targets -- -D warnings
	mix format --check-formatted
	mix compile --warnings-as-errors --force

# The BEAM's schedulers spin for a while when they run out of work; on a machine whose cores
# all compute the next token that spinning takes their time (0.6b-4bit on 2 cores: ~5% per
# token). The demo and the benches run with it off; see README, "Few cores".
BEAM_NO_SPIN = ERL_FLAGS="$${ERL_FLAGS:-} +sbwt none +sbwtdcpu none +sbwtdio none"; export ERL_FLAGS;

demo: setup build
	$(BEAM_NO_SPIN) export $(FIXTURES); mix run scripts/demo.exs

# This project vs mlx-lm and llama.cpp on 0.6B-shaped and tiny checkpoints (writes
# bench/README.md), or on CKPT=DIR.
bench: setup build
	$(BEAM_NO_SPIN) mix run bench/compare.exs $(if $(CKPT),$(CKPT),--write-readme)

# A Qwen3-8B-shaped 4-bit checkpoint as stored beside llama.cpp Q4_0 of the same weights
# (writes 9 GB of checkpoints into the cache the first time).
bench-8b: setup build
	mix run bench/big.exs --write-readme

# Qwen3.Serving with 1/4/8 concurrent callers vs the same requests one after another, and
# streams through Qwen3.HTTP vs straight from the serving.
bench-serving: setup build
	mix run bench/serving.exs $(if $(CKPT),$(CKPT),--write-readme)
	export $(FIXTURES); mix run bench/http.exs $(if $(CKPT),,--write-readme)
	mix run bench/prefix_cache.exs --write-readme
	mix run bench/kv_cache.exs --write-readme

# Qwen3-MoE (a Qwen3-30B-A3B-shaped 4-bit checkpoint with 4 layers; building it once takes
# ≈ 16 GB of memory) against mlx-lm, and text-embedding throughput.
bench-moe: setup build
	mix run bench/moe.exs $(if $(CKPT),$(CKPT),--write-readme)
	mix run bench/embedding.exs --write-readme

# NIF round trips, samplers, the Elixir vs native loop, and what a constraint costs.
bench-micro: setup build
	mix run bench/nif_round_trip.exs
	mix run bench/samplers.exs
	QWEN3_FUSED_CPU=0 mix run bench/samplers.exs
	export $(FIXTURES); mix run bench/generate_loops.exs
	export $(FIXTURES); mix run bench/constraint.exs --write-readme

# Bounded-time mutation fuzzing of the checkpoint loader (QWEN3_FUZZ_SECONDS, QWEN3_FUZZ_SEED).
fuzz: setup
	$(WITH_MLX) export $(FIXTURES); QWEN3_FUZZ_SECONDS=$${QWEN3_FUZZ_SECONDS:-120} \
	  cargo test --release -p qwen3 --test fuzz_loader -- --ignored --nocapture

# The memory soak at full length: RSS and MLX memory flat over 1,000 generations.
soak: setup build
	export $(FIXTURES); QWEN3_SOAK_GENERATIONS=$${QWEN3_SOAK_GENERATIONS:-1000} \
	  mix test test/qwen3/memory_soak_test.exs

clean:
	rm -rf _build priv/native
	cargo clean
