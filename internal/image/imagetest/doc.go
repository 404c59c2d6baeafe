// Package imagetest makes image tarballs for tests without a compiler: a
// minimal static ELF file stands in for a real binary. The images cannot
// run; they are for code that stores, moves or inspects images.
package imagetest
