package testsrv

import (
	"os/exec"
	"testing"
	"time"
)

// TestFreeze: after Freeze every thread of the process is stopped, after
// Thaw it runs again.
func TestFreeze(t *testing.T) {
	// sleep(1) stands for a server; the many threads of a real one are
	// what TestMariaDBHung in userdb/sql freezes.
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	if err := Freeze(cmd.Process, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if stopped, err := allThreadsStopped(cmd.Process.Pid); !stopped || err != nil {
		t.Fatalf("after Freeze: stopped %v, %v", stopped, err)
	}
	if err := Thaw(cmd.Process); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		stopped, err := allThreadsStopped(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if !stopped {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still stopped 30 s after Thaw")
		}
		time.Sleep(time.Millisecond)
	}
}
