// Command kind-config decodes kind cluster config files the way `kind create cluster --config`
// does before it creates anything: the apiVersion and kind are read first, then the whole file
// is decoded into kind's published v1alpha4.Cluster type with go.yaml.in/yaml/v3 and unknown
// fields refused (the decoder and option of kind's pkg/internal/apis/config/encoding, which is
// internal and cannot be imported), and kind's defaults are applied. Each decoded config is
// printed as one JSON line on stdout; the first file that does not decode is named on stderr
// with the decoder's message, and the exit code is 1.
//
// Usage: kind-config FILE...
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	yaml "go.yaml.in/yaml/v3"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
)

type typeMeta struct {
	Kind       string `yaml:"kind,omitempty"`
	APIVersion string `yaml:"apiVersion,omitempty"`
}

func decode(path string) (*v1alpha4.Cluster, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	tm := typeMeta{}
	if err := yaml.Unmarshal(raw, &tm); err != nil {
		return nil, fmt.Errorf("could not determine kind / apiVersion for config: %w", err)
	}
	if tm.APIVersion != "kind.x-k8s.io/v1alpha4" {
		return nil, fmt.Errorf("unknown apiVersion: %q (kind reads kind.x-k8s.io/v1alpha4)",
			tm.APIVersion)
	}
	if tm.Kind != "Cluster" {
		return nil, fmt.Errorf("unknown kind %q for apiVersion: %s", tm.Kind, tm.APIVersion)
	}
	cfg := &v1alpha4.Cluster{}
	d := yaml.NewDecoder(bytes.NewReader(raw))
	d.KnownFields(true)
	if err := d.Decode(cfg); err != nil {
		return nil, fmt.Errorf("unable to decode config: %w", err)
	}
	v1alpha4.SetDefaultsCluster(cfg)
	return cfg, nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kind-config FILE...")
		os.Exit(2)
	}
	out := json.NewEncoder(os.Stdout)
	for _, path := range os.Args[1:] {
		cfg, err := decode(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			os.Exit(1)
		}
		if err := out.Encode(cfg); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			os.Exit(1)
		}
	}
}
