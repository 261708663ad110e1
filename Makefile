# `make demo` and `make test` both work on a fresh clone: they create .venv when missing.
VENV ?= .venv
PY := $(VENV)/bin/python
# torch 2.14.1 + torchvision 0.29.1 are the pair pip installs from this machine's disk;
# pinning them first keeps pip from looking for a newer torch.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
export HF_HUB_OFFLINE ?= 1

.PHONY: install demo test test-slow bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e '.[test]' $(TORCH_PINS)
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/lt-plugins demo --out demo_out

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

# The benchmarks behind the README's figures (tens of minutes on 2 cores).
bench: install
	$(PY) -m pip install -q -e '.[bench]' $(TORCH_PINS)
	$(PY) benchmarks/mask_overhead.py
	$(PY) benchmarks/ticket_size.py
	$(PY) benchmarks/paper_mnist.py
	$(PY) benchmarks/families.py

clean:
	rm -rf demo_out .pytest_cache build *.egg-info
