# The two commands that matter:
#   make demo   set up (if needed) and run the demo: generate a sample bag, replay + evaluate it
#   make test   set up (if needed), lint (ruff), then run the whole test suite
.PHONY: setup lint test demo bench clean

setup:
	bash scripts/setup.sh

lint: setup
	bash scripts/lint.sh

test: setup
	bash scripts/lint.sh
	bash scripts/run_tests.sh

demo: setup
	bash scripts/demo.sh

bench: setup
	.venv/bin/python bench/benchmark.py

clean:
	rm -rf build demo_output runs
