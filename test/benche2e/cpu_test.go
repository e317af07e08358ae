package benche2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The processes whose CPU the harness accounts for while mesh-wide writes
// run: on this machine the control plane, mtlsguard and the harness (its
// writers and the no-op webhook) share the same CPUs, and a write's latency
// through the API server depends on all of them.
const (
	procAPIServer = "kube-apiserver"
	procEtcd      = "etcd"
	procMtlsguard = "mtlsguard"
	procHarness   = "harness" // this process: the writers and the no-op webhook
	procOther     = "other"   // busy time of the machine not in the above (other tenants, the kernel)
	procSteal     = "steal"   // time the hypervisor gave the machine's CPUs to others
	procIdle      = "idle"
)

// cpuProcs are the columns of the report, in order.
var cpuProcs = []string{procMtlsguard, procAPIServer, procEtcd, procHarness, procOther, procSteal, procIdle}

// cpuSample is CPU time so far, in clock ticks, by process (cpuProcs), and
// when it was taken.
type cpuSample struct {
	at    time.Time
	ticks map[string]int64
}

// sampleCPU reads the CPU time of this process, of its children named
// etcd, kube-apiserver and mtlsguard, and of the whole machine
// (/proc/stat).
func sampleCPU() (cpuSample, error) {
	s := cpuSample{at: time.Now(), ticks: map[string]int64{}}
	self := os.Getpid()
	paths, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return s, err
	}
	var named int64
	for _, path := range paths {
		st, err := readStat(path)
		if err != nil {
			continue // the process exited
		}
		switch {
		case st.pid == self:
			s.ticks[procHarness] += st.cpu
		case st.ppid == self && (st.comm == procAPIServer || st.comm == procEtcd || st.comm == procMtlsguard):
			s.ticks[st.comm] += st.cpu
		default:
			continue
		}
		named += st.cpu
	}
	machine, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s, err
	}
	line, _, _ := strings.Cut(string(machine), "\n")
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return s, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var v [8]int64 // user nice system idle iowait irq softirq steal
	for i := range v {
		if v[i], err = strconv.ParseInt(fields[i+1], 10, 64); err != nil {
			return s, fmt.Errorf("/proc/stat: %w", err)
		}
	}
	busy := v[0] + v[1] + v[2] + v[5] + v[6]
	s.ticks[procOther] = busy - named
	s.ticks[procSteal] = v[7]
	s.ticks[procIdle] = v[3] + v[4]
	return s, nil
}

type procStat struct {
	pid, ppid int
	comm      string
	cpu       int64 // utime + stime, clock ticks
}

// readStat reads /proc/PID/stat.
func readStat(path string) (procStat, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return procStat{}, err
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("%s: no command name", path)
	}
	var st procStat
	if st.pid, err = strconv.Atoi(strings.TrimSpace(s[:open])); err != nil {
		return procStat{}, fmt.Errorf("%s: %w", path, err)
	}
	st.comm = s[open+1 : end]
	// The command name, in parentheses, may hold spaces: count fields after it.
	fields := strings.Fields(s[end+1:])
	if len(fields) < 13 {
		return procStat{}, fmt.Errorf("%s: %d fields after the name", path, len(fields))
	}
	if st.ppid, err = strconv.Atoi(fields[1]); err != nil {
		return procStat{}, fmt.Errorf("%s: %w", path, err)
	}
	for _, f := range fields[11:13] { // utime, stime: fields 14 and 15 of stat(5)
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("%s: %w", path, err)
		}
		st.cpu += n
	}
	return st, nil
}

// cpuTicks is the CPU time (user and system, in clock ticks) a process has
// used.
func cpuTicks(pid int) (int64, error) {
	st, err := readStat(fmt.Sprintf("/proc/%d/stat", pid))
	return st.cpu, err
}

// cpuUse adds up CPU time over intervals: the mesh-wide phases of one arm.
type cpuUse struct {
	wall  time.Duration
	ticks map[string]int64
}

// add adds the interval from a to b.
func (u cpuUse) add(a, b cpuSample) cpuUse {
	if u.ticks == nil {
		u.ticks = map[string]int64{}
	}
	u.wall += b.at.Sub(a.at)
	for k, v := range b.ticks {
		u.ticks[k] += v - a.ticks[k]
	}
	return u
}

// cores is the average number of CPUs proc used over the intervals.
func (u cpuUse) cores(proc string) float64 {
	if u.wall <= 0 {
		return 0
	}
	// Process and machine times are read apart: a few ticks of skew must
	// not make "other" negative.
	return max(float64(u.ticks[proc]), 0) / clockTicks / u.wall.Seconds()
}

// clockTicks is USER_HZ, the unit of /proc's CPU times: 100 on every Linux
// architecture Go supports.
const clockTicks = 100
