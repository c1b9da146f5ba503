// Wrapper module pinning kind's config types (sigs.k8s.io/kind) for the strict kind-config check.
module vextrus.local/tools/kind-config

go 1.26.0

require (
	go.yaml.in/yaml/v3 v3.0.4
	sigs.k8s.io/kind v0.33.0
)

require github.com/pkg/errors v0.9.1 // indirect
