# The two commands a newcomer needs: `make run` (demo portal) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run test test-e2e translations extract-messages clean

$(BIN)/portal: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/portal

translations: $(BIN)/portal
	$(BIN)/pybabel compile -d portal/translations

## make run: install, migrate, seed the demo when the database is empty, serve on http://127.0.0.1:5000
run: translations
	$(BIN)/portal db upgrade
	$(BIN)/portal demo seed --if-empty
	@echo "Serving on http://$(HOST):$(PORT)"
	$(BIN)/portal run --host $(HOST) --port $(PORT) --with-threads

## make test: the whole suite (SQLite by default; PostgreSQL when PORTAL_TEST_DATABASE_URL is set)
test: translations
	$(BIN)/pytest -m "not e2e" $(PYTEST_ARGS)

## make test-e2e: the browser journeys in headless Chromium (needs /usr/bin/chromium)
test-e2e: translations
	$(BIN)/pytest -m e2e tests/e2e $(PYTEST_ARGS)

## make extract-messages: refresh portal/translations/messages.pot and the catalogs after changing texts
extract-messages: $(BIN)/portal
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -o portal/translations/messages.pot --no-location --sort-output .
	$(BIN)/pybabel update -i portal/translations/messages.pot -d portal/translations --no-fuzzy-matching

clean:
	rm -rf $(VENV) instance .pytest_cache
