package image

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
)

// checkStaticELF makes sure bin can run in an image with no libc and no
// dynamic loader, where a dynamically linked program fails with a baffling
// "no such file or directory". It returns the GOARCH-style architecture the
// binary is built for, or "" if the machine is not one it knows.
func checkStaticELF(bin []byte) (arch string, err error) {
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return "", fmt.Errorf("not an ELF executable (%v); build a static Linux binary, e.g. CGO_ENABLED=0 GOOS=linux go build", err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return "", fmt.Errorf("ELF file of type %s is not an executable", f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			interp := "a dynamic loader"
			if b := make([]byte, min(p.Filesz, 256)); len(b) > 0 {
				if _, err := p.ReadAt(b, 0); err == nil {
					interp = string(bytes.TrimRight(b, "\x00"))
				}
			}
			return "", errors.New("dynamically linked (needs " + interp + "); build it static, e.g. with CGO_ENABLED=0")
		}
	}
	return elfArch(f), nil
}

func elfArch(f *elf.File) string {
	le := f.ByteOrder == binary.LittleEndian
	is64 := f.Class == elf.ELFCLASS64
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64"
	case elf.EM_386:
		return "386"
	case elf.EM_AARCH64:
		return "arm64"
	case elf.EM_ARM:
		return "arm"
	case elf.EM_RISCV:
		if is64 {
			return "riscv64"
		}
	case elf.EM_PPC64:
		if le {
			return "ppc64le"
		}
		return "ppc64"
	case elf.EM_S390:
		return "s390x"
	case elf.EM_LOONGARCH:
		return "loong64"
	case elf.EM_MIPS:
		switch {
		case is64 && le:
			return "mips64le"
		case is64:
			return "mips64"
		case le:
			return "mipsle"
		default:
			return "mips"
		}
	}
	return ""
}
