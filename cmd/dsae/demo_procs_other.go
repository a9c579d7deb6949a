//go:build !linux

package main

import "syscall"

// childSysProcAttr is nil where the kernel cannot tie a child's life to its
// parent's; the demo then relies on stopping its children itself.
func childSysProcAttr() *syscall.SysProcAttr { return nil }
