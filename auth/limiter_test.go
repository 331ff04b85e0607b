package auth

import (
	"testing"
	"time"
)

func TestFailureLimiter(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	l := NewFailureLimiter(3, clock)
	if d := l.Wait("a"); d != 0 {
		t.Fatalf("fresh key waits %v", d)
	}
	for i := 0; i < 3; i++ {
		l.Fail("a")
	}
	if d := l.Wait("a"); d != time.Second {
		t.Errorf("after 3 failures: wait %v, want 1s", d)
	}
	if d := l.Wait("b"); d != 0 {
		t.Errorf("another key waits %v", d)
	}
	l.Fail("a")
	if d := l.Wait("a"); d != 2*time.Second {
		t.Errorf("after 4 failures: wait %v, want 2s", d)
	}
	now = now.Add(2 * time.Second)
	if d := l.Wait("a"); d != 0 {
		t.Errorf("after the lockout: wait %v", d)
	}
	// A minute after the lockout the key is forgotten.
	now = now.Add(2 * time.Minute)
	if d := l.Wait("a"); d != 0 || l.tracked.Load() != 0 {
		t.Errorf("old failures still count: wait %v, tracked %d", d, l.tracked.Load())
	}
}
