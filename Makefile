# Everyday commands. On a fresh machine `make demo` and `make test` do all the set-up themselves:
# Graphviz (system package) when `dot` is missing, a virtual environment, the pinned CPU build of
# torch for the tests, and cgviz itself in editable mode.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.cgviz-installed
# The CPU build of torch: an unpinned torch, or PyPI's own linux wheel of the same release, is a CUDA
# build of several GB. PyTorch's CPU index has it; the +cpu label (on Linux, where PyPI's wheel is the
# CUDA one) makes pip fail rather than take PyPI's build when that index cannot be reached. Where the
# wheel lies on disk (pip.conf's find-links, as on the machines this is developed on) pip takes that
# file, and --retries 0 lets it pass over an index it cannot resolve at once (with pip's default of 5
# retries an unreachable index added 70 s there, waiting between retries for each of torch's ten
# packages); --timeout caps the wait for an index that never answers.
TORCH_PIN   := torch==2.13.0$(if $(filter Linux,$(shell uname -s)),+cpu)
TORCH_INDEX := https://download.pytorch.org/whl/cpu
TORCH_FROM  := --extra-index-url $(TORCH_INDEX) --retries 0 --timeout 20
PIP    := $(BIN)/pip install --quiet --disable-pip-version-check
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install graphviz chromium demo test fuzz bench docs site snapshots parser clean

install: graphviz chromium $(STAMP)

# Graphviz, with DejaVu (∂, σ, Greek) and Noto CJK (names in Chinese, Japanese, Korean: 损失), the
# fonts cgviz.view.markup.FONT names; each is installed only when missing.
graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  echo "Graphviz's dot is missing: installing the graphviz package"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq graphviz fonts-dejavu-core >/dev/null; }
	@fc-list -q 'Noto Sans CJK SC' 2>/dev/null || { \
	  echo "no CJK font: installing fonts-noto-cjk"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq fonts-noto-cjk >/dev/null; }

# The browser for tests/test_html.py (Playwright drives the system chromium: no `playwright install`).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "chromium is missing: installing the chromium package"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# The other snapshot plugins that use --snapshot-update, as wheels for tests/test_plugin_neighbours.py,
# which installs each beside cgviz in an environment of its own: syrupy and pytest-snapshot both
# register --snapshot-update, so one environment holding both stops every pytest run (exit 3).
NEIGHBOURS := syrupy pytest-snapshot snapshottest six termcolor fastdiff wasmer wasmer-compiler-cranelift

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) $(TORCH_PIN) $(TORCH_FROM)
	@# the distribution was called `cgviz` before it became cgviz-backprop (PyPI's cgviz is another project)
	$(BIN)/pip uninstall --quiet --yes cgviz 2>/dev/null || true
	$(PIP) -e '.[torch,test,hf,slides,onnx,modelexplorer,docs]' --config-settings editable_mode=compat
	$(BIN)/pip download --quiet --disable-pip-version-check --no-deps -d $(VENV)/neighbours $(NEIGHBOURS)
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

# 10,000 fresh random inputs through parse, forward, backward, DOT and JSON (tests/test_fuzz.py), and
# a tenth as many random modules drawn through the Python API under random options, judged by the
# state oracle (tests/test_fuzz_api.py); `make test` runs both on a small fixed-seed sample.
# FUZZ_EXAMPLES=100000 for more.
FUZZ_EXAMPLES ?= 10000
fuzz: install
	CGVIZ_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q -s -p no:randomly tests/test_fuzz.py tests/test_fuzz_api.py

# The README's pictures, then the site.
docs: install
	$(BIN)/cgviz render sample_graphs/pizza.cg -o docs/pizza.png
	$(BIN)/cgviz render sample_graphs/pizza_zh.cg -o docs/pizza_zh.png
	$(BIN)/cgviz torch sample_graphs/models/rnn_loop.py -o docs/rnn_loop.png
	$(BIN)/cgviz render sample_graphs/rnn_20.cg --dpi 60 -q -o docs/rnn_loop_dsl.png
	$(BIN)/cgviz torch sample_graphs/models/tiny_llama.py --loss ce --dpi 40 -o docs/tiny_llama.png
	$(BIN)/python docs/screenshot_html.py
	$(BIN)/python docs/screenshot_drill.py
	$(BIN)/python docs/diff_picture.py
	$(BIN)/python docs/screenshot_watch.py
	$(MAKE) site

# The README, CONTRIBUTING.md and docs/ as a static site in build/site (mkdocs.yml), built offline;
# --strict stops at a link to a missing page or heading. Open build/site/index.html.
site: install
	$(BIN)/mkdocs build --strict

# Rewrite the goldens that changed after an intended change (then review and commit): the manifest's
# in tests/snapshots, and the graph_snapshot fixture's in tests/__graph_snapshots__.
snapshots: install
	$(BIN)/cgviz snapshot cgviz.toml --golden tests/snapshots --update
	$(BIN)/python -m pytest -q tests/test_samples_snapshot.py --cgviz-update

# The expression parser (cgviz/lang/lalr.py), generated by Lark from cgviz/lang/grammar.lark: run after
# changing the grammar (tests/test_parser_tables.py fails until then).
parser: install
	$(BIN)/python -m cgviz.lang.gen_parser

bench: install
	@# torchview is only a peer to measure against; --no-deps so it cannot pull another torch build.
	$(PIP) --no-deps torchview
	$(BIN)/python bench/bench_render.py
	$(BIN)/python bench/bench_parse.py
	$(BIN)/python bench/bench_lines.py --before main   # lines/s of long flat programs, before and after
	$(BIN)/python bench/bench_torch.py
	$(BIN)/python bench/bench_page.py     # prints its table; BENCHMARKS.md's page section is pasted from it
	$(BIN)/python bench/bench_diff.py
	$(BIN)/python bench/bench_watch.py
	$(BIN)/python bench/bench_watch_page.py   # a recorded run's page: GPT-2 small, 1,000 steps (target < 30 s)

clean:
	rm -rf out .pytest_cache build *.egg-info
