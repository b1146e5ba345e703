# The two commands that matter:
#   make demo   set up (if needed) and run the demo: generate a sample bag, replay + evaluate it
#   make test   set up (if needed), lint (ruff), then run the whole test suite (what CI runs: .ci/run)
# and, while editing:
#   make test-fast   lint + the ROS-free core tier: tests that start no process (about a minute)
.PHONY: setup lint test test-fast demo bench clean

setup:
	bash scripts/setup.sh

lint: setup
	bash scripts/lint.sh

test: setup
	bash scripts/lint.sh
	bash scripts/run_tests.sh

test-fast: setup
	bash scripts/lint.sh
	bash scripts/run_tests.sh --fast

demo: setup
	bash scripts/demo.sh

bench: setup
	.venv/bin/python bench/benchmark.py

clean:
	rm -rf build demo_output runs
