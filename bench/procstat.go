package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// ProcCPU is the CPU time a process has used, in clock ticks (see ClockTick).
type ProcCPU struct {
	UTime, STime uint64
}

// Ticks returns user plus system time.
func (c ProcCPU) Ticks() uint64 { return c.UTime + c.STime }

// ParseProcStat reads utime and stime (fields 14 and 15) from the contents
// of /proc/<pid>/stat. The command name (field 2) is in parentheses and may
// itself contain spaces and parentheses, so fields are counted from the last
// ')'.
func ParseProcStat(b []byte) (ProcCPU, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return ProcCPU{}, errors.New("bench: /proc stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return ProcCPU{}, fmt.Errorf("bench: /proc stat: %d fields after the command name, want at least 13", len(f))
	}
	u, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return ProcCPU{}, fmt.Errorf("bench: /proc stat utime: %w", err)
	}
	s, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return ProcCPU{}, fmt.Errorf("bench: /proc stat stime: %w", err)
	}
	return ProcCPU{UTime: u, STime: s}, nil
}

// ReadProcCPU reads the CPU time of process pid (0: this process).
func ReadProcCPU(pid int) (ProcCPU, error) {
	b, err := os.ReadFile(procPath(pid, "stat"))
	if err != nil {
		return ProcCPU{}, err
	}
	return ParseProcStat(b)
}

// ParseStatusKB returns the value, in kB, of a "Name:  N kB" line of
// /proc/<pid>/status, e.g. VmHWM (peak resident set) or VmRSS.
func ParseStatusKB(b []byte, name string) (uint64, error) {
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte(name+":"))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("bench: /proc status %s: unexpected %q", name, bytes.TrimSpace(rest))
		}
		return strconv.ParseUint(f[0], 10, 64)
	}
	return 0, fmt.Errorf("bench: /proc status: no %s line", name)
}

// ReadStatusKB reads one kB field of /proc/<pid>/status (0: this process).
func ReadStatusKB(pid int, name string) (uint64, error) {
	b, err := os.ReadFile(procPath(pid, "status"))
	if err != nil {
		return 0, err
	}
	return ParseStatusKB(b, name)
}

// CPUTimes is one "cpuN" line of /proc/stat, in clock ticks.
type CPUTimes struct {
	Busy, Total uint64
}

// ParseSystemStat returns the times of the named CPU line ("cpu" for all,
// "cpu0", …) of /proc/stat. Busy is everything but idle and iowait; guest
// time is already included in user and nice, so it is not added again.
func ParseSystemStat(b []byte, cpu string) (CPUTimes, error) {
	for line := range bytes.Lines(b) {
		f := strings.Fields(string(line))
		if len(f) < 5 || f[0] != cpu {
			continue
		}
		var t CPUTimes
		for i, s := range f[1:min(len(f), 9)] { // user nice system idle iowait irq softirq steal
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return CPUTimes{}, fmt.Errorf("bench: /proc/stat %s: %w", cpu, err)
			}
			t.Total += v
			if i != 3 && i != 4 {
				t.Busy += v
			}
		}
		return t, nil
	}
	return CPUTimes{}, fmt.Errorf("bench: /proc/stat: no %s line", cpu)
}

// ReadSystemStat reads one CPU line of /proc/stat.
func ReadSystemStat(cpu string) (CPUTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return CPUTimes{}, err
	}
	return ParseSystemStat(b, cpu)
}

// ClockTick returns the length of one clock tick in microseconds, from
// `getconf CLK_TCK`, or 10 000 µs (100 Hz, what Linux reports on every
// common architecture) when getconf is unavailable.
func ClockTick() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if hz, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && hz > 0 {
			return 1e6 / hz
		}
	}
	return 1e4
}

func procPath(pid int, file string) string {
	if pid == 0 {
		return "/proc/self/" + file
	}
	return "/proc/" + strconv.Itoa(pid) + "/" + file
}
