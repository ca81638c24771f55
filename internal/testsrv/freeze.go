package testsrv

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Freeze sends SIGSTOP to a server process and returns once every one of
// its threads has stopped. kill(2) returns before that: the kernel wakes one
// thread to begin the group stop, and until it has run, a sibling thread
// woken by a request still answers it. On a loaded machine a query sent
// right after SIGSTOP was answered that way, and a test that froze the
// server to see a timeout saw a success instead.
func Freeze(p *os.Process, patience time.Duration) error {
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("SIGSTOP pid %d: %w", p.Pid, err)
	}
	deadline := time.Now().Add(patience)
	for {
		stopped, err := allThreadsStopped(p.Pid)
		if err != nil {
			return err
		}
		if stopped {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pid %d: threads still running %v after SIGSTOP", p.Pid, patience)
		}
		time.Sleep(time.Millisecond)
	}
}

// Thaw continues a frozen process (SIGCONT wakes every thread at once).
func Thaw(p *os.Process) error {
	if err := p.Signal(syscall.SIGCONT); err != nil {
		return fmt.Errorf("SIGCONT pid %d: %w", p.Pid, err)
	}
	return nil
}

// allThreadsStopped reads each thread's state from /proc/PID/task/TID/stat:
// T (stopped), t (traced) and the exiting Z and X can no longer answer.
func allThreadsStopped(pid int) (bool, error) {
	dir := filepath.Join("/proc", itoa(pid), "task")
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("threads of pid %d: %w", pid, err)
	}
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, task.Name(), "stat"))
		if errors.Is(err, fs.ErrNotExist) {
			continue // the thread has exited
		}
		if err != nil {
			return false, fmt.Errorf("thread %s of pid %d: %w", task.Name(), pid, err)
		}
		// "TID (COMM) STATE ...": COMM may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) {
			return false, fmt.Errorf("thread %s of pid %d: unreadable stat %q", task.Name(), pid, b)
		}
		switch b[i+2] {
		case 'T', 't', 'Z', 'X':
		default:
			return false, nil
		}
	}
	return true, nil
}
