package tokens

import (
	"context"
	"syscall"
	"testing"
	"time"
)

// BenchmarkPath compares the hand-written claims scanner and signer with
// golang-jwt on encoding/json claims (jsonClaims), per algorithm: a
// verification that misses the verified-token cache, one that hits it, and
// a signature of an execution token.
func BenchmarkPath(b *testing.B) {
	cfgs := benchConfigs(b)
	for _, alg := range []string{"HS512", "EdDSA"} {
		for _, lib := range []bool{false, true} {
			name := alg + "/handwritten"
			if lib {
				name = alg + "/library"
			}
			b.Run(name, func(b *testing.B) {
				saved := libraryPath
				libraryPath = lib
				defer func() { libraryPath = saved }()
				s, err := NewSigner(cfgs[alg])
				if err != nil {
					b.Fatal(err)
				}
				miss, err := NewValidator(cfgs[alg])
				if err != nil {
					b.Fatal(err)
				}
				cached := cfgs[alg]
				cached.CacheSize = 0
				hit, err := NewValidator(cached)
				if err != nil {
					b.Fatal(err)
				}
				tok, _, err := s.Sign(benchBase(), 10*time.Minute)
				if err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				b.Run("verify-miss", func(b *testing.B) {
					b.ReportAllocs()
					defer reportCPU(b)()
					for b.Loop() {
						if _, err := miss.Validate(ctx, tok); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.Run("verify-hit", func(b *testing.B) {
					b.ReportAllocs()
					defer reportCPU(b)()
					for b.Loop() {
						if _, err := hit.Validate(ctx, tok); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.Run("sign", func(b *testing.B) {
					b.ReportAllocs()
					defer reportCPU(b)()
					for b.Loop() {
						if _, _, err := s.Sign(benchBase(), 10*time.Minute); err != nil {
							b.Fatal(err)
						}
					}
				})
			})
		}
	}
}

// reportCPU returns the function that reports the process's CPU time
// (user and system, every thread) per operation as cpu-ns/op: on a shared
// machine the steadier figure than wall time.
func reportCPU(b *testing.B) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	return func() {
		b.ReportMetric(float64(cpu()-start)/float64(b.N), "cpu-ns/op")
	}
}
