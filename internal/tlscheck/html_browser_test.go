package tlscheck

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds a Chromium or Chrome binary, or fails the test saying how
// to install one: the page is only proven in a real browser.
func chromium(t *testing.T) string {
	t.Helper()
	names := []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"}
	for _, name := range names {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Fatalf("no Chromium found on PATH (tried %s): install Debian's package, `apt-get install -y chromium` (.ci/run does)", strings.Join(names, ", "))
	return ""
}

// writeReport runs tls-check -A -o html on args and returns the page's URL.
func writeReport(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := run(t, "", append(args, "-A", "-o", "html")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	path := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return "file://" + path
}

// TestHTMLInABrowser loads the Deep-Dive bad-rule report in headless
// Chromium: the default → default cell is a CONFLICT, and clicking it lists
// the bad-rule/default row with its endpoint's reason. Set
// TLSCHECK_SCREENSHOT to a path to keep the screenshot of the many-namespace
// page (docs/tls-check-html.png is one).
func TestHTMLInABrowser(t *testing.T) {
	alloc, cancel := chromedp.NewExecAllocator(context.Background(),
		append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium(t)), chromedp.NoSandbox, chromedp.WindowSize(1100, 700))...)
	t.Cleanup(cancel)
	browser, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	// The first Run starts the browser; it must not carry the timeout.
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start %s: %v", chromium(t), err)
	}

	tab := func(t *testing.T) context.Context {
		ctx, cancel := chromedp.NewContext(browser)
		t.Cleanup(cancel)
		ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	const cell = `td.conflict[data-client="default"][data-service="default"]`
	// rowOf reads the STATUS of the row a rule's name is in.
	const badRuleStatus = `[...document.querySelectorAll("#details tr.row")].filter(tr => tr.cells[5].textContent === "bad-rule/default").map(tr => tr.cells[1].textContent).join()`

	t.Run("the Deep-Dive's bad-rule opens to its CONFLICT row", func(t *testing.T) {
		ctx := tab(t)
		if err := chromedp.Do(ctx, chromedp.Navigate(writeReport(t, "-f", deepDive, "-f", deepDive+"/bad-rule")), chromedp.WaitVisible(chromedp.CSS(cell))); err != nil {
			t.Fatal(err)
		}
		text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(cell)))
		if err != nil || text != "1/2" {
			t.Errorf("cell text %q (%v), want 1/2: one CONFLICT row of two", text, err)
		}
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(cell)), chromedp.WaitVisible(chromedp.CSS("#details tr.row"))); err != nil {
			t.Fatal(err)
		}
		status, err := chromedp.Run(ctx, chromedp.Evaluate[string](badRuleStatus))
		if err != nil || status != "CONFLICT" {
			t.Errorf("bad-rule/default row status %q (%v), want CONFLICT", status, err)
		}
		details, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#details")))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"default/httpbin-5b8d6c4d7-k2xvq", "server is STRICT but the client sends plaintext", "sleep.default.svc.cluster.local:80"} {
			if !strings.Contains(details, want) {
				t.Errorf("details lack %q:\n%s", want, details)
			}
		}
		shot(t, ctx, filepath.Join(t.TempDir(), "deep-dive.png"))
	})

	t.Run("no rows: the page says so", func(t *testing.T) {
		ctx := tab(t)
		url := writeReport(t, "-f", deepDive, "--conflicts-only")
		if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#details p"))); err != nil {
			t.Fatal(err)
		}
		text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#details")))
		if err != nil || !strings.Contains(text, "No rows") {
			t.Errorf("details %q (%v), want No rows", text, err)
		}
	})

	t.Run("many namespaces: the matrix, the filters, a cell", func(t *testing.T) {
		ctx := tab(t)
		url := writeReport(t, "-f", deepDive, "-f", deepDive+"/bad-rule", "-f", "testdata/namespaces.yaml")
		if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(cell))); err != nil {
			t.Fatal(err)
		}
		rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#matrix tbody th")].map(th => th.textContent)`))
		if want := "default ns-1 ns-2 ns-3 ns-4 ns-5 ns-6 ns-7"; err != nil || strings.Join(rows, " ") != want {
			t.Errorf("client namespaces %v (%v), want %s", rows, err, want)
		}
		ordered, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(o => { o.value = "conflicts"; o.dispatchEvent(new Event("change")); o.value = "name";
			const r = [...document.querySelectorAll("#matrix thead th[scope=col]")].map(th => th.textContent); o.dispatchEvent(new Event("change")); return r })(document.getElementById("order"))`))
		if want := "default ns-5 ns-2"; err != nil || strings.Join(ordered, " ") != want {
			t.Errorf("service namespaces, most CONFLICT rows first: %v (%v), want %s", ordered, err, want)
		}
		if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#filter-clients"), "ns-3")); err != nil {
			t.Fatal(err)
		}
		filtered, err := chromedp.Run(ctx, chromedp.Poll[[]string](
			`(() => { const r = [...document.querySelectorAll("#matrix tbody th")].map(th => th.textContent); return r.length === 1 ? r : null })()`,
			chromedp.WithPollingTimeout(10*time.Second)))
		if err != nil || len(filtered) != 1 || filtered[0] != "ns-3" {
			t.Errorf("after filtering for ns-3: %v (%v)", filtered, err)
		}
		if err := chromedp.Do(ctx,
			chromedp.Evaluate[chromedp.Void](`(f => { f.value = ""; f.dispatchEvent(new Event("input")) })(document.getElementById("filter-clients"))`),
			chromedp.WaitVisible(chromedp.CSS(`td[data-client="ns-1"]`)),
			chromedp.Click(chromedp.CSS(cell)),
			chromedp.WaitVisible(chromedp.CSS("#details tr.row"))); err != nil {
			t.Fatal(err)
		}
		status, err := chromedp.Run(ctx, chromedp.Evaluate[string](badRuleStatus))
		if err != nil || status != "CONFLICT" {
			t.Errorf("bad-rule/default row status %q (%v), want CONFLICT", status, err)
		}
		path := filepath.Join(t.TempDir(), "namespaces.png")
		if p := os.Getenv("TLSCHECK_SCREENSHOT"); p != "" {
			path = p
		}
		shot(t, ctx, path)
	})
}

// shot saves a PNG of the whole page.
func shot(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Fatalf("screenshot is not a PNG (%d bytes)", len(png))
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}
