package main

import "syscall"

// childSysProcAttr makes the kernel SIGKILL a child when the demo dies,
// however it dies, so that no process of the demo outlives it, and puts the
// child in its own process group, so that a Ctrl-C at the terminal reaches
// only the demo, which then stops its children in order.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
