# The two set-up commands: `make demo` and `make test`. Both create .venv and install matchday.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres

.PHONY: demo test install services chromium wrk bench-serving clean

install: $(INSTALLED) chromium

$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@echo "upgrading pip in $(VENV)"
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "installing matchday with its dev tools into $(VENV) (about two minutes on a fresh machine: scikit-learn, pyarrow, Ray, Playwright...)"
	@$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(INSTALLED)
	@echo "installed: $$($(BIN)/python -c 'import matchday; print("matchday", matchday.__version__)')"

# The dashboard's browser tests drive Debian's chromium (Playwright's driver only: no browser download).
chromium:
	@command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

# The serving benchmark's load generator (benchmarks, not the tests).
wrk:
	@command -v wrk >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y wrk)

# Online serving side by side with MLflow, MLServer and a bare FastAPI app (docs/benchmarks.md).
bench-serving: $(INSTALLED) wrk
	../shared/bench/serving_vs_peers.sh

# PostgreSQL is started before each session and CI; start it here too if it has gone away.
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || { \
	  echo "starting PostgreSQL"; \
	  pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; \
	  for i in 1 2 3 4 5 6 7 8 9 10; do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; }

demo: $(INSTALLED)
	$(BIN)/matchday demo

test: $(INSTALLED) services chromium
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	MATCHDAY_TEST_POSTGRES_URL=$${MATCHDAY_TEST_POSTGRES_URL:-$(PG_URL)} $(BIN)/python -m pytest -n 4 --durations=25

clean:
	rm -rf $(VENV) .matchday .pytest_cache .hypothesis
