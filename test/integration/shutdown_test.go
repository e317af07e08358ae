package integration

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestGracefulShutdown sends SIGTERM to a webhook process that answers a
// stream of writes under failurePolicy Fail: /readyz fails at once, every
// write sent during --shutdown-delay is still answered, and the process
// exits cleanly well within Kubernetes' 30 s grace period.
func TestGracefulShutdown(t *testing.T) {
	outer := t
	t.Run("SIGTERM", func(t *testing.T) { gracefulShutdown(t, outer) })
}

func gracefulShutdown(t, outer *testing.T) {
	const delay = 2 * time.Second
	withFailurePolicy(t, admissionregistrationv1.Fail, 3)
	p := startProcess(t, "--shutdown-delay="+delay.String())
	c := newCluster(t)
	c.ensureNamespace(t, "faults", nil)
	deepDive(t, c)
	waitDenies(t, c)

	// Writers: dry-run creates, half allowed and half denied, until stop.
	var answered, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				var err error
				if (i+n)%2 == 0 {
					err = c.Create(ctx, faultRule(fmt.Sprintf("drain-%d-%d", i, n)), client.DryRunAll)
				} else {
					err = c.Create(ctx, badRule(), client.DryRunAll)
					if apierrors.IsForbidden(err) {
						err = nil // the webhook's denial: an answer
					}
				}
				cancel()
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				} else {
					answered.Add(1)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	before := answered.Load()

	sent := time.Now()
	p.signal(t, syscall.SIGTERM)
	var unready time.Duration
	for {
		if err := p.ready(); err != nil {
			unready = time.Since(sent)
			break
		}
		if time.Since(sent) > 5*time.Second {
			t.Fatal("still ready 5 s after SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-p.exited:
		t.Fatalf("exited (%v) before it served out the shutdown delay", err)
	default:
	}
	// Keep writing through most of the delay: the server still answers.
	time.Sleep(delay - unready - 300*time.Millisecond)
	close(stop)
	wg.Wait()
	during := answered.Load() - before
	if n := failed.Load(); n > 0 {
		t.Errorf("%d writes failed around SIGTERM, the first: %v", n, firstErr.Load())
	}
	if during == 0 {
		t.Error("no write answered during the shutdown delay")
	}
	var exit error
	select {
	case exit = <-p.exited:
		p.exited <- exit
	case <-time.After(30 * time.Second):
		t.Fatal("still running 30 s after SIGTERM")
	}
	took := time.Since(sent)
	if exit != nil {
		t.Errorf("exit: %v", exit)
	}
	if took > delay+10*time.Second {
		t.Errorf("exited %v after SIGTERM, want soon after the %v delay", took, delay)
	}
	t.Logf("SIGTERM: unready after %v, %d writes answered during the %v delay (0 failed), exited after %v (%v)",
		unready.Round(time.Millisecond), during, delay, took.Round(time.Millisecond), exit)
	startProcessFor(t, outer) // for the cleanups
}
