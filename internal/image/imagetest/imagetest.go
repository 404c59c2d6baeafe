package imagetest

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/shoal-dev/shoal/internal/image"
)

// ELF returns a minimal 64-bit little-endian ELF executable header for
// machine, followed by payload (so different payloads give different
// images). A non-empty interp adds a PT_INTERP segment naming it, which
// makes the file look dynamically linked.
func ELF(machine elf.Machine, interp, payload string) []byte {
	const ehsize, phsize = 64, 56
	phnum := uint16(1)
	if interp != "" {
		phnum = 2
	}
	dataOff := uint64(ehsize + phsize*int(phnum))

	var ident [elf.EI_NIDENT]byte
	copy(ident[:], elf.ELFMAG)
	ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)

	var buf bytes.Buffer
	write := func(v any) { _ = binary.Write(&buf, binary.LittleEndian, v) }
	write(elf.Header64{
		Ident:     ident,
		Type:      uint16(elf.ET_EXEC),
		Machine:   uint16(machine),
		Version:   uint32(elf.EV_CURRENT),
		Entry:     0x400000 + dataOff,
		Phoff:     ehsize,
		Ehsize:    ehsize,
		Phentsize: phsize,
		Phnum:     phnum,
	})
	data := []byte(payload)
	if interp != "" {
		write(elf.Prog64{
			Type:   uint32(elf.PT_INTERP),
			Flags:  uint32(elf.PF_R),
			Off:    dataOff,
			Filesz: uint64(len(interp) + 1),
			Memsz:  uint64(len(interp) + 1),
			Align:  1,
		})
		data = append([]byte(interp+"\x00"), data...)
	}
	write(elf.Prog64{
		Type:   uint32(elf.PT_LOAD),
		Flags:  uint32(elf.PF_R | elf.PF_X),
		Vaddr:  0x400000,
		Paddr:  0x400000,
		Filesz: dataOff + uint64(len(data)),
		Memsz:  dataOff + uint64(len(data)),
		Align:  0x1000,
	})
	buf.Write(data)
	return buf.Bytes()
}

// Binary writes a static amd64 ELF with payload into a temporary directory
// and returns its path.
func Binary(t testing.TB, payload string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(p, ELF(elf.EM_X86_64, "", payload), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// Tarball returns an image tarball tagged ref, as image.BuildTarball writes
// it, whose binary /app is a fake ELF carrying payload.
func Tarball(t testing.TB, ref, payload string) []byte {
	t.Helper()
	var buf bytes.Buffer
	opts := image.BuildOptions{Ref: ref, Binary: Binary(t, payload), Path: "/app"}
	if err := image.BuildTarball(opts, &buf); err != nil {
		t.Fatalf("BuildTarball(%s): %v", ref, err)
	}
	return buf.Bytes()
}
