# Entry points for a fresh Debian 12 machine: `make demo` and `make check`.
# Both install missing packages with scripts/setup.sh first, then build with CMake + Ninja.
BUILD ?= build
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 15

.PHONY: all setup build check test fuzz demo bench clean default-model dst-model safety-model retriever-model vqa-models vlm-model

all: build

setup:
	@./scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 1200

# Unit + golden tests, then each libFuzzer target for FUZZ_SECONDS.
check: test
	./fuzz/run.sh $(FUZZ_SECONDS)

fuzz: setup
	./fuzz/run.sh $(FUZZ_SECONDS)

demo: build
	@./scripts/demo.sh $(BUILD)/bin/llmforge

# Rebuilds models/default from nothing but this repo (corpus, tokenizer, training; ~25 min on 2 cores).
default-model: build
	@./scripts/default_model.sh $(BUILD)/bin/llmforge

# Rebuilds models/dst (the shop assistant's dialogue-state tracker: intent classifier trained on
# generated utterances with liblinear, products and codes from the shop's catalogue; ~30 s).
dst-model: build
	$(BUILD)/bin/llmforge dst-train --out models/dst --seed 1 --per-label 3000 --C 4

# Rebuilds the safety classifier in models/safety (rules.json there is hand-written data; ~30 s).
safety-model: build
	$(BUILD)/bin/llmforge safety-train --out models/safety --seed 1 --per-category 2000 --C 4

# Rebuilds the retriever's query and passage encoders in models/retriever (~5 s).
retriever-model: build
	$(BUILD)/bin/llmforge retrieval-train --out models/retriever --seed 1

# Rebuilds the visual question answering models in models/vqa (issue 20: gated / concat / cross
# fusion and the question-only and image-only baselines; ~25 min on 2 cores), then scores them
# (docs/vqa-eval.md and .svg).
vqa-models: build
	scripts/vqa_models.sh $(BUILD)/bin/llmforge
	bench/vqa_eval.py $(BUILD)/bin/llmforge --out docs

# Rebuilds the vision-language model in models/vlm (issue 20 item 5: tower + projector + Llama,
# trained here on the generated scenes) and scores it (docs/vlm-eval.md).
vlm-model: build
	scripts/vlm_model.sh $(BUILD)/bin/llmforge
	bench/vlm_eval.py $(BUILD)/bin/llmforge --out docs

bench: build
	./scripts/bench.sh $(BUILD)/bin/llmforge

clean:
	rm -rf $(BUILD) build-fuzz
