package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/zeromicro/go-zero/core/logx"

	"github.com/nextpkg/vrpc/codec/seal"
)

func newKeygenCmd() *cobra.Command {
	var ed bool
	cmd := &cobra.Command{
		Use:   "keygen [--ed25519]",
		Short: "Make a key for signed calls: a client secret, or an Ed25519 key pair",
		Long: `Make a key for signed calls (security in server.yaml and client.yaml).

Without flags it prints a new random secret (HMAC-SHA256): the server and the
client both hold it, under one key id. With --ed25519 it prints a new Ed25519
key pair as PEM: the private half stays with its owner (a client's
security.private_key, or the server's security.signing_key), the public half
goes to the other side (the server's security.clients.<id>.keys.<kid>.public_key,
or a client's security.server_keys).

Keep what it prints out of the configuration files themselves: put it in a
file (secret_file, private_key_file) or the environment (${ENV} in YAML).`,
		Example: `  vrpc keygen > edge-1.secret
  vrpc keygen --ed25519`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return keygen(cmd.OutOrStdout(), ed)
		},
	}
	cmd.Flags().BoolVar(&ed, "ed25519", false, "make an Ed25519 key pair instead of a secret")
	return cmd
}

func keygen(out io.Writer, ed bool) error {
	if !ed {
		_, err := fmt.Fprintln(out, seal.GenerateSecret())
		return err
	}
	pub, priv, err := seal.GenerateEd25519()
	if err != nil {
		return failure(err)
	}
	_, err = fmt.Fprint(out, priv, pub)
	return err
}

// reloadOnHangup calls reload on every SIGHUP until ctx ends, logging what
// became of it: the keys of signed calls are read again without a restart.
func reloadOnHangup(ctx context.Context, what string, reload func() error) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := reload(); err != nil {
					logx.Errorf("vrpc: SIGHUP: %s not reloaded, the ones in use stay: %v", what, err)
					continue
				}
				logx.Infof("vrpc: SIGHUP: %s reloaded", what)
			}
		}
	}()
}
