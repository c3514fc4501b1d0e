# Everyday commands. On a fresh machine `make demo` and `make test` do all the set-up themselves:
# Graphviz (system package) when `dot` is missing, a virtual environment, the pinned CPU build of
# torch for the tests, and cgviz itself in editable mode.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.cgviz-installed
# The CPU build that lies on this machine's disk; an unpinned torch would pull a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0
PIP    := $(BIN)/pip install --quiet --disable-pip-version-check
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install graphviz chromium demo test fuzz bench docs snapshots clean

install: graphviz chromium $(STAMP)

graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  echo "Graphviz's dot is missing: installing the graphviz package"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq graphviz fonts-dejavu-core >/dev/null; }

# The browser for tests/test_html.py (Playwright drives the system chromium: no `playwright install`).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "chromium is missing: installing the chromium package"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) $(TORCH_PIN)
	$(PIP) -e '.[torch,test,hf]'
	touch $@

# Render every sample into out/ (PNG and SVG), and the sample models with cgviz torch.
demo: install
	@mkdir -p out
	@for f in sample_graphs/*.cg; do \
	  stem=$$(basename $$f .cg); \
	  $(BIN)/cgviz render $$f -o out/$$stem.png || exit 1; \
	  $(BIN)/cgviz render $$f -o out/$$stem.svg --quiet || exit 1; \
	done
	$(BIN)/cgviz torch sample_graphs/models/rnn_loop.py -o out/rnn_loop.png
	$(BIN)/cgviz torch sample_graphs/models/tiny_llama.py --loss ce -o out/tiny_llama.svg
	$(BIN)/cgviz torch sample_graphs/models/tiny_t5.py -o out/tiny_t5.svg
	$(BIN)/cgviz torch sample_graphs/models/res_cnn.py -o out/res_cnn.png
	$(BIN)/cgviz torch sample_graphs/models/tiny_gpt.py:build --input-shape 1,16:long --loss ce -o out/tiny_gpt.png
	$(BIN)/cgviz torch sample_graphs/models/tiny_gpt.py:build --input-shape 1,16:long --depth 2 -o out/tiny_gpt_depth2.svg
	$(BIN)/cgviz torch sample_graphs/models/res_cnn.py --view autograd -o out/res_cnn_autograd.svg
	$(BIN)/python sample_graphs/models/export_samples.py out
	$(BIN)/cgviz torch out/res_cnn.pt2 -o out/res_cnn_pt2.png
	$(BIN)/cgviz torch out/tiny_gpt.pt2 --depth 2 -o out/tiny_gpt_pt2.svg
	$(BIN)/cgviz torch out/rnn_loop.ts --input out/rnn_loop_inputs.pt -o out/rnn_loop_ts.png
	@echo "pictures are in out/"

test: install
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

# 10,000 fresh random inputs through parse, forward, backward, DOT and JSON (tests/test_fuzz.py);
# `make test` runs the same fuzzer on a small fixed-seed sample. FUZZ_EXAMPLES=100000 for more.
FUZZ_EXAMPLES ?= 10000
fuzz: install
	CGVIZ_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q -s -p no:randomly tests/test_fuzz.py

# The README's pictures.
docs: install
	$(BIN)/cgviz render sample_graphs/pizza.cg -o docs/pizza.png
	$(BIN)/cgviz torch sample_graphs/models/rnn_loop.py -o docs/rnn_loop.png
	$(BIN)/cgviz torch sample_graphs/models/tiny_llama.py --loss ce --dpi 40 -o docs/tiny_llama.png
	$(BIN)/python docs/screenshot_html.py

# Rewrite the golden pictures in tests/snapshots after an intended change (then review and commit).
snapshots: install
	$(BIN)/cgviz snapshot cgviz.toml --golden tests/snapshots --update

bench: install
	@# torchview is only a peer to measure against; --no-deps so it cannot pull another torch build.
	$(PIP) --no-deps torchview
	$(BIN)/python bench/bench_render.py
	$(BIN)/python bench/bench_parse.py
	$(BIN)/python bench/bench_torch.py

clean:
	rm -rf out .pytest_cache build *.egg-info
