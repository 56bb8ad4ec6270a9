package vconfig

import (
	"fmt"

	"github.com/zeromicro/go-zero/core/conf"
)

// Load loads server.yaml (or JSON, TOML) into cfg with go-zero's conf,
// expanding ${ENV} references, and checks it (Validate).
func Load(file string, cfg *Config) error {
	if err := conf.Load(file, cfg, conf.UseEnv()); err != nil {
		return fmt.Errorf("server config %s: %w", file, err)
	}
	cfg.SetDefaults() // for optional sections left out of the file
	return nil
}

// LoadClient loads client.yaml into cfg as Load does server.yaml.
func LoadClient(file string, cfg *ClientConfig) error {
	if err := conf.Load(file, cfg, conf.UseEnv()); err != nil {
		return fmt.Errorf("client config %s: %w", file, err)
	}
	cfg.SetDefaults() // for optional sections left out of the file
	return nil
}
