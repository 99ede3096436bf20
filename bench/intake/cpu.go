package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The kernel counts CPU time in clock ticks of 1/100 s (USER_HZ on Linux).
const tick = 10 * time.Millisecond

// cpuOf is the user and system CPU time a process has used.
func cpuOf(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * tick
}

// postgresCPU is the CPU time of the cluster's postmaster and its current
// children (the backends of the servers' pools live as long as the pools).
func (b *bench) postgresCPU() time.Duration {
	dataDir := filepath.Join(b.dir, "pg", "data")
	procs, _ := filepath.Glob("/proc/[0-9]*")
	var master int
	parents := map[int]int{}
	for _, p := range procs {
		pid, err := strconv.Atoi(filepath.Base(p))
		if err != nil {
			continue
		}
		if cmd, err := os.ReadFile(p + "/cmdline"); err == nil && strings.Contains(string(cmd), dataDir) {
			master = pid
		}
		if st, err := os.ReadFile(p + "/stat"); err == nil {
			s := string(st)
			f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
			if len(f) > 1 {
				parents[pid], _ = strconv.Atoi(f[1])
			}
		}
	}
	if master == 0 {
		return 0
	}
	total := cpuOf(master)
	for pid, parent := range parents {
		if parent == master {
			total += cpuOf(pid)
		}
	}
	return total
}

// selfCPU is the CPU time this process (the load generator) has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineTicks reads the machine's CPU time from /proc/stat: all of it, and
// the part spent idle or waiting for I/O, in clock ticks.
func machineTicks() (total, idle int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	for i, f := range strings.Fields(line)[1:] {
		n, _ := strconv.ParseInt(f, 10, 64)
		total += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return total, idle
}
