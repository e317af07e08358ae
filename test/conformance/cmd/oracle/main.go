// Command oracle answers, for each scenario file, which TLS every client sidecar
// sends to every endpoint of every service port and whether the server accepts it,
// using Istio's own control plane code (see package oracle).
//
//	oracle [-o OUTDIR] [-j N] [-keep-invalid] [-v] SCENARIO.yaml...
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mtlsguard/mtlsguard/test/conformance/oracle"
)

func main() {
	outDir := flag.String("o", "", "write OUTDIR/<basename without .yaml>.json for every scenario")
	jobs := flag.Int("j", 1, "number of scenarios evaluated concurrently")
	keepInvalid := flag.Bool("keep-invalid", false, "feed Istio configs that fail Istio validation to the control plane anyway")
	verbose := flag.Bool("v", false, "keep Istio's info logs (on stderr) and print per-scenario timings")
	ambient := flag.Bool("ambient", false, "run istiod with ambient mode on (PILOT_ENABLE_AMBIENT=true): captured pods, HBONE, ztunnel clients")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s [-o OUTDIR] [-j N] [-keep-invalid] [-v] SCENARIO.yaml...\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if *ambient && os.Getenv("PILOT_ENABLE_AMBIENT") != "true" {
		// istiod reads its ambient flags once, at package initialisation:
		// start again with the environment an ambient install has.
		reexecWithAmbient()
	}
	files := flag.Args()
	if len(files) == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if *outDir == "" && len(files) != 1 {
		fmt.Fprintln(os.Stderr, "oracle: -o OUTDIR is required with more than one scenario")
		os.Exit(2)
	}
	if err := oracle.ConfigureLogging(*verbose); err != nil {
		fmt.Fprintln(os.Stderr, "oracle:", err)
		os.Exit(1)
	}
	if *outDir != "" {
		if err := os.MkdirAll(*outDir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "oracle:", err)
			os.Exit(1)
		}
	}
	if *jobs < 1 {
		*jobs = 1
	}

	var (
		mu     sync.Mutex
		failed int
		wg     sync.WaitGroup
	)
	work := make(chan string)
	for range *jobs {
		wg.Go(func() {
			for f := range work {
				start := time.Now()
				out, err := runOne(f, oracle.ParseOptions{KeepInvalid: *keepInvalid})
				if err == nil {
					if *outDir == "" {
						_, err = os.Stdout.Write(out)
					} else {
						name := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(f), ".yaml"), ".yml") + ".json"
						err = os.WriteFile(filepath.Join(*outDir, name), out, 0o644)
					}
				}
				mu.Lock()
				if err != nil {
					failed++
					fmt.Fprintf(os.Stderr, "oracle: %s: %v\n", f, err)
				} else if *verbose {
					fmt.Fprintf(os.Stderr, "oracle: %s: %v\n", f, time.Since(start).Round(time.Millisecond))
				}
				mu.Unlock()
			}
		})
	}
	for _, f := range files {
		work <- f
	}
	close(work)
	wg.Wait()
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "oracle: %d of %d scenarios failed\n", failed, len(files))
		os.Exit(1)
	}
}

func runOne(file string, opts oracle.ParseOptions) ([]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	sc, err := oracle.ParseScenario(data, opts)
	if err != nil {
		return nil, err
	}
	res, err := oracle.Evaluate(sc)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", " ")
	if err := enc.Encode(res); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func reexecWithAmbient() {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "oracle: -ambient:", err)
		os.Exit(1)
	}
	env := append(os.Environ(), "PILOT_ENABLE_AMBIENT=true")
	if err := syscall.Exec(self, os.Args, env); err != nil {
		fmt.Fprintln(os.Stderr, "oracle: -ambient: re-execute:", err)
		os.Exit(1)
	}
}
