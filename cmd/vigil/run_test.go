package main

import (
	"strings"
	"testing"
)

// The deploy example is a config users copy: it must stay valid.
func TestDeployConfigValid(t *testing.T) {
	t.Chdir(repoRoot)
	cfg, err := LoadConfig("deploy/vigil.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Kafka.SASL.PasswordEnv == "" || !cfg.Kafka.TLS.Enabled {
		t.Error("the deploy example should show TLS and SASL with the password from the environment")
	}
}

func TestNewLogger(t *testing.T) {
	if _, err := newLogger(&strings.Builder{}, "verbose", "text"); err == nil {
		t.Error("an unknown level was accepted")
	}
	if _, err := newLogger(&strings.Builder{}, "info", "xml"); err == nil {
		t.Error("an unknown format was accepted")
	}
}
