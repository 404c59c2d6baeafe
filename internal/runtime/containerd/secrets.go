package containerd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/shoal-dev/shoal/internal/runtime"
)

// Secrets live on a tmpfs the driver mounts at StateDir/secrets (memory
// only, never on disk), one directory per container, bind-mounted
// read-only at /run/secrets.

func (d *Driver) secretsRoot() string { return filepath.Join(d.cfg.StateDir, "secrets") }

// ensureSecretsTmpfs mounts the tmpfs once.
func (d *Driver) ensureSecretsTmpfs() error {
	root := d.secretsRoot()
	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err == nil && st.Type == unix.TMPFS_MAGIC {
		if mounted, _ := isMountPoint(root); mounted {
			return nil
		}
	}
	if err := unix.Mount("tmpfs", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0700,size=64m"); err != nil {
		return fmt.Errorf("mount a tmpfs for secrets at %s: %w", root, err)
	}
	return nil
}

// isMountPoint says whether path is the root of a mount (its device
// differs from its parent's).
func isMountPoint(path string) (bool, error) {
	var a, b unix.Stat_t
	if err := unix.Stat(path, &a); err != nil {
		return false, err
	}
	if err := unix.Stat(filepath.Dir(path), &b); err != nil {
		return false, err
	}
	return a.Dev != b.Dev, nil
}

// writeSecrets writes a container's secrets, NAME/KEY at mode 0400 in
// directories of mode 0500, all owned by the container's user, and
// returns the mount that shows them at /run/secrets.
func (d *Driver) writeSecrets(id string, secrets map[string]map[string][]byte, sec runtime.Security) (specs.Mount, error) {
	if err := d.ensureSecretsTmpfs(); err != nil {
		return specs.Mount{}, err
	}
	uid, gid := 0, 0
	if sec.UID != nil {
		uid = int(*sec.UID)
	}
	if sec.GID != nil {
		gid = int(*sec.GID)
	}
	dir := filepath.Join(d.secretsRoot(), id)
	if err := os.RemoveAll(dir); err != nil {
		return specs.Mount{}, err
	}
	mkdir := func(p string) error {
		if err := os.Mkdir(p, 0o500); err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	}
	if err := mkdir(dir); err != nil {
		return specs.Mount{}, err
	}
	for name, data := range secrets {
		sd := filepath.Join(dir, name)
		// Written as root before the directory is closed to the owner.
		if err := os.Mkdir(sd, 0o700); err != nil {
			return specs.Mount{}, err
		}
		for key, value := range data {
			p := filepath.Join(sd, key)
			if err := os.WriteFile(p, value, 0o400); err != nil {
				return specs.Mount{}, err
			}
			if err := os.Chown(p, uid, gid); err != nil {
				return specs.Mount{}, err
			}
		}
		if err := os.Chmod(sd, 0o500); err != nil {
			return specs.Mount{}, err
		}
		if err := os.Chown(sd, uid, gid); err != nil {
			return specs.Mount{}, err
		}
	}
	return specs.Mount{Destination: "/run/secrets", Type: "bind", Source: dir, Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"}}, nil
}

// removeSecrets drops a container's secrets from memory.
func (d *Driver) removeSecrets(id string) error {
	err := os.RemoveAll(filepath.Join(d.secretsRoot(), id))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// unmountSecrets removes the secrets tmpfs (node reset).
func unmountSecrets(stateDir string) error {
	root := filepath.Join(stateDir, "secrets")
	if mounted, err := isMountPoint(root); err != nil || !mounted {
		return nil
	}
	if err := unix.Unmount(root, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount %s: %w", root, err)
	}
	return nil
}
