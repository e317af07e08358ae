package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"fmt"
	"io"
	"os"
)

// checkExecutable fails unless raw is an executable a machine of platform
// p runs: ELF on linux, Mach-O on darwin, PE on windows, each for p's
// architecture. An archive that holds another platform's binary installs
// and then fails with "exec format error" on the user's machine; this
// catches it before it ships.
func checkExecutable(raw []byte, p platform) error {
	r := bytes.NewReader(raw)
	switch p.OS {
	case "linux":
		want, ok := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[p.Arch]
		f, err := elf.NewFile(r)
		if err != nil {
			return fmt.Errorf("not an ELF file, which %s runs: %w", p, err)
		}
		defer f.Close()
		// ET_DYN with an entry point: a position-independent executable.
		if !ok || f.Machine != want || (f.Type != elf.ET_EXEC && (f.Type != elf.ET_DYN || f.Entry == 0)) {
			return fmt.Errorf("ELF %v %v, want an executable for %s", f.Type, f.Machine, p)
		}
	case "darwin":
		want, ok := map[string]macho.Cpu{"amd64": macho.CpuAmd64, "arm64": macho.CpuArm64}[p.Arch]
		f, err := macho.NewFile(r)
		if err != nil {
			return fmt.Errorf("not a Mach-O file, which %s runs: %w", p, err)
		}
		defer f.Close()
		if !ok || f.Cpu != want || f.Type != macho.TypeExec {
			return fmt.Errorf("Mach-O %v %v, want an executable for %s", f.Type, f.Cpu, p)
		}
	case "windows":
		want, ok := map[string]uint16{"amd64": pe.IMAGE_FILE_MACHINE_AMD64, "arm64": pe.IMAGE_FILE_MACHINE_ARM64}[p.Arch]
		f, err := pe.NewFile(r)
		if err != nil {
			return fmt.Errorf("not a PE file, which %s runs: %w", p, err)
		}
		defer f.Close()
		oh, _ := f.OptionalHeader.(*pe.OptionalHeader64)
		switch {
		case !ok || f.Machine != want:
			return fmt.Errorf("PE machine %#x, want %#x for %s", f.Machine, want, p)
		case f.Characteristics&pe.IMAGE_FILE_EXECUTABLE_IMAGE == 0 || f.Characteristics&pe.IMAGE_FILE_DLL != 0:
			return fmt.Errorf("PE characteristics %#x: not an executable image", f.Characteristics)
		case oh == nil || oh.Subsystem != pe.IMAGE_SUBSYSTEM_WINDOWS_CUI:
			// kubectl runs a plugin in its console.
			return fmt.Errorf("PE optional header %T: want a 64-bit console (CUI) executable", f.OptionalHeader)
		}
	default:
		return fmt.Errorf("no executable format known for %s", p)
	}
	return nil
}

// archiveFile returns the content of the regular file name in a tar.gz.
func archiveFile(path, name string) ([]byte, error) {
	var raw []byte
	found := false
	err := eachArchiveFile(path, func(h *tar.Header, r io.Reader) (bool, error) {
		if h.Name != name {
			return true, nil
		}
		var err error
		raw, err = io.ReadAll(r)
		found = true
		return false, err
	})
	switch {
	case err != nil:
		return nil, err
	case !found:
		return nil, fmt.Errorf("%s: no file %q", path, name)
	}
	return raw, nil
}

// eachArchiveFile calls fn with every regular file of a tar.gz, in order,
// until fn returns false or an error.
func eachArchiveFile(path string, fn func(h *tar.Header, r io.Reader) (bool, error)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		more, err := fn(h, tr)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", path, h.Name, err)
		}
		if !more {
			return nil
		}
	}
}
