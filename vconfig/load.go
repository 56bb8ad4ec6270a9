package vconfig

import "fmt"

// Load loads server.yaml (or JSON, TOML) into cfg (see LoadFile:
// ${ENV} references expanded, unknown keys an error) and checks it
// (Validate).
func Load(file string, cfg *Config) error {
	if err := LoadFile(file, cfg); err != nil {
		return fmt.Errorf("server config %s: %w", file, err)
	}
	cfg.SetDefaults() // for optional sections left out of the file
	return nil
}

// LoadClient loads client.yaml into cfg as Load does server.yaml. It
// leaves the gateway section to the gateway (vgateway.LoadConfig checks it).
func LoadClient(file string, cfg *ClientConfig) error {
	if err := loadFile(file, cfg, "gateway"); err != nil {
		return fmt.Errorf("client config %s: %w", file, err)
	}
	cfg.SetDefaults() // for optional sections left out of the file
	return nil
}
