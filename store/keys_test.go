package store

import (
	"bytes"
	"errors"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/taskgate/taskgate/workload"
)

func TestTupleRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		parts []string
	}{
		{"plain", []string{"dag", "run"}},
		{"slashes and colons", []string{"a/b:c", "scheduled__2026-01-01T00:00:00+00:00"}},
		{"unicode", []string{"日本語", "ünïcødé 🚀"}},
		{"empty components", []string{"", "", ""}},
		{"zero bytes", []string{"\x00", "a\x00b", "\x00\x00"}},
		{"escape lookalikes", []string{"\x00\xff", "\x00\x01", "\xff\x01"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tuple(tt.parts...)
			var got []string
			for len(b) > 0 {
				var s string
				var err error
				if s, b, err = readString(b); err != nil {
					t.Fatal(err)
				}
				got = append(got, s)
			}
			if diff := cmp.Diff(tt.parts, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

// TestKeysDoNotCollide checks pairs of coordinates whose naive
// concatenations would collide or whose prefixes would overlap.
func TestKeysDoNotCollide(t *testing.T) {
	tests := []struct {
		name string
		a, b []string
	}{
		{"slash moves between dag and run", []string{"a/b", "c"}, []string{"a", "b/c"}},
		{"colon moves between dag and run", []string{"a:b", "c"}, []string{"a", "b:c"}},
		{"empty first", []string{"", "ab"}, []string{"a", "b"}},
		{"empty last", []string{"ab", ""}, []string{"a", "b"}},
		{"zero byte moves", []string{"a\x00", "b"}, []string{"a", "\x00b"}},
		{"escape bytes", []string{"a\x00\x01", ""}, []string{"a", "\x01"}},
		{"invalid utf-8 ff", []string{"a", "\xff"}, []string{"a\x00", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ka, kb := tuple(tt.a...), tuple(tt.b...)
			if bytes.Equal(ka, kb) {
				t.Fatalf("%q and %q encode alike: %x", tt.a, tt.b, ka)
			}
			// Neither may select the other in a prefix scan.
			if bytes.HasPrefix(ka, kb) || bytes.HasPrefix(kb, ka) {
				t.Errorf("%q (%x) and %q (%x) are prefixes of each other", tt.a, ka, tt.b, kb)
			}
			// Nor may a one-component prefix select the wrong dag.
			if bytes.HasPrefix(ka, tuple(tt.b[0])) && tt.a[0] != tt.b[0] {
				t.Errorf("dag prefix %q selects %q", tt.b[0], tt.a)
			}
		})
	}
}

// TestKeyOrder checks that encoded keys sort like their components.
func TestKeyOrder(t *testing.T) {
	type coord struct {
		dag, run, task string
		mi             int
	}
	in := []coord{
		{"b", "r", "t", 0}, {"a", "r", "t", 10}, {"a", "r", "t", -1}, {"a", "r", "t", 2},
		{"a", "r", "t", 0}, {"a/", "r", "t", -1}, {"a", "r\x00", "t", -1}, {"a", "", "t", 5},
		{"", "r", "t", 0}, {"é", "r", "t", 0}, {"a", "r", "t", 1 << 40}, {"a", "r", "t", -1 << 40},
	}
	want := append([]coord(nil), in...)
	sort.Slice(want, func(i, j int) bool {
		x, y := want[i], want[j]
		if x.dag != y.dag {
			return x.dag < y.dag
		}
		if x.run != y.run {
			return x.run < y.run
		}
		if x.task != y.task {
			return x.task < y.task
		}
		return x.mi < y.mi
	})
	got := append([]coord(nil), in...)
	sort.Slice(got, func(i, j int) bool {
		return bytes.Compare(currentTIKey(got[i].dag, got[i].run, got[i].task, got[i].mi),
			currentTIKey(got[j].dag, got[j].run, got[j].task, got[j].mi)) < 0
	})
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(coord{})); diff != "" {
		t.Errorf("key order (-want +got):\n%s", diff)
	}
}

func TestTimeKeyOrderAndRoundTrip(t *testing.T) {
	times := []time.Time{
		time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(-1, 999_999_999),
		time.Unix(0, 0),
		time.Unix(0, 1),
		t0,
		t0.Add(time.Nanosecond),
		time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for i, tm := range times {
		got, rest, err := readTime(appendTime(nil, tm))
		if err != nil || len(rest) != 0 || !got.Equal(tm) {
			t.Errorf("round trip %v = %v, %q, %v", tm, got, rest, err)
		}
		if i > 0 && bytes.Compare(appendTime(nil, times[i-1]), appendTime(nil, tm)) >= 0 {
			t.Errorf("%v does not sort before %v", times[i-1], tm)
		}
	}
}

func TestReadKeyCorrupt(t *testing.T) {
	for name, b := range map[string][]byte{
		"no terminator":    []byte("abc"),
		"lone zero at end": []byte("abc\x00"),
		"bad escape":       []byte("a\x00\x02"),
	} {
		if _, _, err := readString(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	if _, _, err := readMapIndex([]byte{1, 2}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("short map index: %v", err)
	}
	if _, _, _, err := readDagRunTimeKey(append(tuple("d"), 1)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("short time key: %v", err)
	}
}

// FuzzKeys checks that decoding never panics on arbitrary bytes and that
// encoding round-trips arbitrary strings.
func FuzzKeys(f *testing.F) {
	f.Add("dag", "run", []byte("x\x00\x01"))
	f.Add("a/b", "\x00\xff", []byte{0, 0xff, 0})
	f.Fuzz(func(t *testing.T, a, b string, raw []byte) {
		k := dagRunTimeKey(a, t0, b)
		gotA, _, gotB, err := readDagRunTimeKey(k)
		if err != nil || gotA != a || gotB != b {
			t.Fatalf("round trip %q %q = %q %q %v", a, b, gotA, gotB, err)
		}
		if key, mi, err := readXComKeyTail(appendMapIndex(appendString(nil, a), 3)); err != nil || key != a || mi != 3 {
			t.Fatalf("xcom tail %q = %q %d %v", a, key, mi, err)
		}
		// Arbitrary bytes: errors are fine, panics are not.
		readDagRunTimeKey(raw)
		readXComKeyTail(raw)
		decodeXCom(workload.XComRef{}, raw)
		decodeTI("x", raw)
	})
}
