package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/internal/pki"
)

func newKeyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Signing keys for Apps: an owner signs, every node verifies",
	}
	var dir string
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Make an Ed25519 key pair: NAME.key (private, 0600) and NAME.pub; print the public key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if !validKeyName(name) {
				return fmt.Errorf("key name %q: use lowercase letters, digits and '-'", name)
			}
			keyPath, pubPath := filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
			if _, err := os.Stat(keyPath); err == nil {
				return fmt.Errorf("%s exists: a key is not overwritten", keyPath)
			} else if !errors.Is(err, os.ErrNotExist) {
				return err
			}
			priv, err := pki.NewSigningKey()
			if err != nil {
				return err
			}
			pem, err := pki.EncodeSigningKey(priv)
			if err != nil {
				return err
			}
			pub := pki.VerifyKeyString(priv.Public().(ed25519.PublicKey))
			f, err := os.OpenFile(keyPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			if _, err := f.Write(pem); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			if err := os.WriteFile(pubPath, []byte(pub+"\n"), 0o644); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), pub)
			return nil
		},
	}
	create.Flags().StringVar(&dir, "dir", ".", "where to write NAME.key and NAME.pub")
	cmd.AddCommand(create)
	return cmd
}

// validKeyName keeps key names to what is safe in a file name.
func validKeyName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
