# The two commands that matter:
#   make demo   set up (if needed) and run the demo: generate a sample bag, replay + evaluate it
#   make test   set up (if needed) and run the whole test suite
.PHONY: setup test demo bench clean

setup:
	bash scripts/setup.sh

test: setup
	bash scripts/run_tests.sh

demo: setup
	bash scripts/demo.sh

bench: setup
	.venv/bin/python bench/benchmark.py

clean:
	rm -rf build demo_output runs
