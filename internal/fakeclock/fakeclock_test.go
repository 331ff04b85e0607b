package fakeclock

import (
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func TestClock(t *testing.T) {
	tests := map[string]struct {
		move func(c *Clock)
		want time.Time
	}{
		"unmoved":          {move: func(*Clock) {}, want: t0},
		"advance":          {move: func(c *Clock) { c.Advance(90 * time.Second) }, want: t0.Add(90 * time.Second)},
		"advance backward": {move: func(c *Clock) { c.Advance(-time.Hour) }, want: t0.Add(-time.Hour)},
		"set":              {move: func(c *Clock) { c.Set(t0.Add(time.Minute)) }, want: t0.Add(time.Minute)},
		"set then advance": {
			move: func(c *Clock) { c.Set(t0.Add(time.Minute)); c.Advance(time.Second) },
			want: t0.Add(time.Minute + time.Second),
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c := New(t0)
			tt.move(c)
			if got := c.Now(); !got.Equal(tt.want) {
				t.Errorf("Now() = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestConcurrent is meant for -race: readers and a mover share one clock.
func TestConcurrent(t *testing.T) {
	c := New(t0)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				_ = c.Now()
			}
		}()
	}
	for range 100 {
		c.Advance(time.Millisecond)
	}
	wg.Wait()
	if got, want := c.Now(), t0.Add(100*time.Millisecond); !got.Equal(want) {
		t.Errorf("Now() = %v, want %v", got, want)
	}
}
