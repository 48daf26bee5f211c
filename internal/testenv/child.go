package testenv

import (
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// child is a server process started by a test helper.
type child struct {
	name    string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has exited
	waitErr error         // valid once exited is closed
}

// startChild starts cmd as a child that dies with the test binary. name is
// for messages ("Dovecot", "Postfix").
func startChild(name string, cmd *exec.Cmd) (*child, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	setParentDeathSignal(cmd.SysProcAttr)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{name: name, cmd: cmd, exited: make(chan struct{})}
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// exitError describes an unexpected exit; call it once exited is closed.
func (c *child) exitError() error { return fmt.Errorf("%s exited: %v", c.name, c.waitErr) }

// stop sends SIGTERM, and SIGKILL after 10 s. Both masters pass SIGTERM on
// to their children; a child that misses it exits when its master is gone.
func (c *child) stop() error {
	select {
	case <-c.exited:
		return fmt.Errorf("%s had already exited: %v", c.name, c.waitErr)
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return nil
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return errors.New(c.name + " did not stop within 10s of SIGTERM; killed")
	}
}
