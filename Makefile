# Vextrus platform: every day-to-day command. `make` alone lists them.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# npm ci runs again only when a manifest or the lock file changed.
INSTALL_STAMP := node_modules/.vextrus-installed
MANIFESTS := package.json package-lock.json $(wildcard */package.json services/*/package.json \
	tools/*/package.json)

.PHONY: help install tools test-tools build typecheck lint format test up down clean \
	chart-lint images kind-up kind-down dev bench

# What the tests need of the Go-built tools (the first build takes several minutes), the chart
# linters' virtualenv and the Node 24 binary that the images run (see tools/build-tools.sh).
TEST_TOOLS := etcd kube-apiserver kube-controller-manager kubectl helm traefik helm-unittest ct \
	ct-linters kind-config skaffold helm3 node24

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | \
		awk -F':.*## ' '{ printf "  make %-12s %s\n", $$1, $$2 }'

install: $(INSTALL_STAMP) ## Install the npm workspaces (npm ci) when needed

$(INSTALL_STAMP): $(MANIFESTS)
	npm ci --no-audit --no-fund
	@touch $@

tools: ## Build (or reuse) every tool of tools/build-tools.sh (Kubernetes, Helm, chart checks)
	tools/build-tools.sh

test-tools: ## Build (or reuse) only the tools the tests need
	tools/build-tools.sh $(TEST_TOOLS)

build: install ## Compile every package to dist/
	npm run build

typecheck: install ## Type-check sources and tests
	npm run typecheck

lint: install ## ESLint (type-aware) and Prettier
	npm run lint

format: install ## Rewrite files with Prettier
	npm run format

test: install test-tools ## Run every check and test (the README's test command)
	npm run typecheck
	npm run lint
	npm test

# BENCH names benchmarks to run (all when empty), e.g. make bench BENCH=organization-list.
bench: install test-tools ## Run the benchmarks and write the report to bench/results/
	node --import tsx --conditions=vextrus-source bench/src/main.ts $(BENCH)

up: install ## Run the platform on this machine (Ctrl-C stops it)
	npm run up

down: ## Stop a running make up (it keeps its pid in .data/up.pid)
	@pid_file="$${VEXTRUS_DATA_DIR:-.data}/up.pid"; \
		if [[ ! -f "$$pid_file" ]] || ! kill -0 "$$(cat "$$pid_file")" 2>/dev/null; then \
			rm -f "$$pid_file"; echo "The platform is not running."; exit 0; fi; \
		pid="$$(cat "$$pid_file")"; kill -TERM "$$pid"; \
		for _ in $$(seq 60); do kill -0 "$$pid" 2>/dev/null || { echo "Stopped."; exit 0; }; \
			sleep 1; done; \
		echo "make up (pid $$pid) is still stopping after 60 s; see .data/logs/." >&2; exit 1

clean: down ## Stop the platform, then remove its data (.data/) after asking
	@read -r -p "Delete .data/ (database, keys, kubeconfig, logs)? [y/N] " answer; \
		if [[ "$$answer" == [yY]* ]]; then \
			rm -rf .data && echo "Removed .data/"; \
			id=$$(printf %s "$(CURDIR)" | sha256sum | cut -c1-12); \
			if [[ -d /var/lib/vextrus/postgres-$$id ]]; then \
				rm -rf /var/lib/vextrus/postgres-$$id && echo "Removed /var/lib/vextrus/postgres-$$id"; \
			fi; \
		fi

# Container images, the chart and the kind development loop (see "Skaffold on kind" in charts/vextrus/README.md).
KIND_CLUSTER ?= vextrus
IMAGE_TAG ?= dev
IMAGES := auth organization operator migrations

chart-lint: ## Lint the chart: helm lint --strict, ct lint, the helm-unittest suites
	@for values in charts/vextrus/ci/*-values.yaml; do \
		"$$(tools/build-tools.sh --path helm)" lint --strict charts/vextrus -f "$$values"; \
	done
	helm_dir="$$(tools/build-tools.sh --print-dir helm)"; \
		linters="$$(tools/build-tools.sh --path ct-linters)"; \
		PATH="$$helm_dir:$$linters:$$PATH" \
		"$$(tools/build-tools.sh --path ct)" lint --config ct.yaml --charts charts/vextrus
	"$$(tools/build-tools.sh --path helm-unittest)" --strict charts/vextrus

images: ## Build the four container images with Docker (vextrus/<name>:$(IMAGE_TAG))
	docker build -f services/auth/Dockerfile -t vextrus/auth:$(IMAGE_TAG) .
	docker build -f services/organization/Dockerfile -t vextrus/organization:$(IMAGE_TAG) .
	docker build -f operator/Dockerfile -t vextrus/operator:$(IMAGE_TAG) .
	docker build -f migrations/Dockerfile -t vextrus/migrations:$(IMAGE_TAG) .

kind-up: ## Create the kind cluster of deploy/kind/cluster.yaml (needs Docker and kind)
	kind create cluster --name $(KIND_CLUSTER) --config deploy/kind/cluster.yaml

kind-down: ## Delete the kind cluster
	kind delete cluster --name $(KIND_CLUSTER)

# The pinned Skaffold, with the Helm 3 it needs first on PATH (tools/go/README.md says why).
dev: ## Build, deploy and watch the platform on kind with Skaffold (needs kind-up)
	PATH="$$(tools/build-tools.sh --print-dir helm3):$$PATH" \
		"$$(tools/build-tools.sh --path skaffold)" dev --profile kind \
		--kube-context kind-$(KIND_CLUSTER)
